// The WebSocket driver: a real `ws` client on `/v1/sessions/:id/ws`. Answers are the `ack`, `pong` or
// protocol `error` frame that follows a sent frame; the link answers frames in the order they came.
// Frames go out exactly as the scenario wrote them: a WebSocket acknowledges only messages with an id,
// so an input sent without one is answered `{ ok: true }` without its turn.
import type { Socket } from "node:net";
import type { ErrorCode, ServerMessage, SessionEvent } from "@agentwire/protocol";
import { TestClient } from "../helpers/ws-client.js";
import type { Answer, Driver, Link, LinkClose, OpenOptions, Outgoing, SessionTarget } from "./driver.js";
import { EventRecord } from "./event-record.js";

/** Long enough for an answer held behind a paused reader's backlog. */
const ANSWER_TIMEOUT_MS = 15_000;

type AnswerFrame = Extract<ServerMessage, { type: "ack" | "pong" | "error" }>;

/** Ack, pong and errors without a seq answer a client frame; everything else belongs to the stream. */
function isAnswer(m: ServerMessage): m is AnswerFrame {
  return m.type === "ack" || m.type === "pong" || (m.type === "error" && m.seq === undefined);
}

function toAnswer(frame: AnswerFrame): Answer {
  if (frame.type === "ack") return { ok: true, turn: frame.turn };
  if (frame.type === "pong") return { ok: true, reply: frame };
  const { code, field, retryable, retryAfterMs } = frame;
  return { ok: false, error: { code: code as ErrorCode, field, retryable, retryAfterMs } };
}

class WsLink implements Link {
  readonly record = new EventRecord();
  private readonly answers: AnswerFrame[] = [];
  private answerWaiter: (() => void) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private cursor = 0;
  private syncs = 0;

  constructor(readonly client: TestClient) {
    // TestClient's own listeners run first: each arrival reads what it recorded since the last one.
    // The welcome may already be there: it can arrive with the upgrade's answer, before this runs.
    client.ws.on("message", () => this.pull());
    client.ws.on("close", () => {
      this.pull();
      this.record.end();
      this.answerWaiter?.();
    });
    this.pull();
  }

  private pull(): void {
    for (; this.cursor < this.client.messages.length; this.cursor++) {
      const m = this.client.messages[this.cursor] as ServerMessage;
      if (isAnswer(m)) {
        this.answers.push(m);
        this.answerWaiter?.();
      } else {
        this.record.push(m);
      }
    }
  }

  get welcome(): SessionEvent {
    return this.record.events[0] as SessionEvent;
  }

  get events(): readonly ServerMessage[] {
    return this.record.events;
  }

  send(message: Outgoing): Promise<Answer> {
    const run = this.queue.then(() => this.exchange(message));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async exchange(message: Outgoing): Promise<Answer> {
    this.client.send(message);
    // The id the server can read and echo (what the protocol's parser takes): the answer must carry it.
    const raw = typeof message === "string" ? undefined : (message as { id?: unknown }).id;
    const id = typeof raw === "string" && raw.length <= 128 ? raw : undefined;
    if (id !== undefined) {
      const answer = await this.nextAnswer();
      if (answer.id !== id) throw new Error(`the answer to ${JSON.stringify(message).slice(0, 100)} does not echo id ${id}: ${JSON.stringify(answer)}`);
      return toAnswer(answer);
    }
    // Without an id a taken message is answered by nothing: a ping behind it marks where its answer would be.
    const syncId = `sync-${++this.syncs}`;
    this.client.send({ type: "ping", id: syncId });
    const first = await this.nextAnswer();
    if (first.type === "pong" && first.id === syncId) return { ok: true };
    const sync = await this.nextAnswer();
    if (sync.type !== "pong" || sync.id !== syncId) throw new Error(`one frame got two answers: ${JSON.stringify([first, sync])}`);
    if (first.id !== undefined) throw new Error(`the answer to a frame without an id carries id ${first.id}`);
    return toAnswer(first);
  }

  private async nextAnswer(): Promise<AnswerFrame> {
    const deadline = performance.now() + ANSWER_TIMEOUT_MS;
    while (this.answers.length === 0) {
      if (this.record.ended) throw new Error("the link ended before the server answered");
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.answerWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.answerWaiter = null;
    }
    return this.answers.shift() as AnswerFrame;
  }

  /** Frames go out as written: the id on the wire is the scenario's. */
  sentId(id: string): string {
    return id;
  }

  waitFor(predicate: (events: readonly ServerMessage[]) => boolean, label?: string, timeoutMs?: number): Promise<void> {
    return this.record.waitFor(predicate, label, timeoutMs);
  }

  private get socket(): Socket {
    return (this.client.ws as unknown as { _socket: Socket })._socket;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  async closed(): Promise<LinkClose> {
    const code = await this.client.waitClosed();
    return { code, reason: this.client.closeReason };
  }

  async drop(): Promise<void> {
    this.client.ws.terminate();
    await this.client.waitClosed();
  }

  async close(): Promise<void> {
    if (this.client.closeCode !== null) return;
    this.client.close();
    await this.client.waitClosed();
  }
}

export const wsDriver: Driver = {
  name: "websocket",
  capabilities: { rawFrames: true, pauseReading: true },
  async open(session: SessionTarget, options: OpenOptions = {}): Promise<Link> {
    const wsBase = session.base.replace(/^http/, "ws");
    const link = new WsLink(await TestClient.connect(TestClient.sessionUrl(wsBase, session, options.afterSeq)));
    await link.waitFor((events) => events[0]?.type === "session", "the welcome");
    return link;
  },
};
