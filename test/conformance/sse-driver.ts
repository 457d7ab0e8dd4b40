// The SSE + HTTP driver: the event stream over fetch, read by the test SSE parser, and every client
// message as `POST /v1/sessions/:id/messages`. HTTP refusals are mapped to the same typed answer as a
// WebSocket `error` frame, after checking their status against the protocol's error table.
import { ERRORS, ErrorResponse, MessageAccepted, PongEvent, type ServerMessage, type SessionEvent } from "@agentwire/protocol";
import { type SseEvent, SseParser } from "../helpers/sse-client.js";
import type { Answer, Driver, Link, LinkClose, OpenOptions, Outgoing, SessionTarget } from "./driver.js";
import { EventRecord } from "./event-record.js";

/** `: close 4000 slow_consumer`: how the server says why it ends a stream. */
const CLOSE_COMMENT = /^ close (\d{4}) ([a-z_]+)$/;

class SseLink implements Link {
  readonly record = new EventRecord();
  private closeComment: LinkClose | null = null;
  private paused: { promise: Promise<void>; resolve: () => void } | null = null;
  private readonly done: Promise<void>;

  constructor(
    private readonly session: SessionTarget,
    body: ReadableStream<Uint8Array>,
    private readonly controller: AbortController,
    private readonly afterSeq: number | undefined,
  ) {
    const parser = new SseParser(
      (event) => {
        this.closeComment = null;
        let message: unknown;
        try {
          message = JSON.parse(event.data);
        } catch {
          this.record.fail(new Error(`an event whose data is not JSON: ${event.data.slice(0, 200)}`));
          return;
        }
        const wrong = this.framingProblem(event, message as ServerMessage);
        if (wrong) this.record.fail(new Error(`${wrong}: ${JSON.stringify(event).slice(0, 300)}`));
        else this.record.push(message);
      },
      (comment) => {
        // Only a close comment that ends the stream says why it ended.
        const close = CLOSE_COMMENT.exec(comment.text);
        this.closeComment = close ? { code: Number(close[1]), reason: close[2] as string } : null;
      },
    );
    this.done = this.read(body, parser);
  }

  /**
   * The event stream's own rules: `event:` is the type; `id:` is the seq of a logged event, the
   * stream's position on the welcome (where an exact replay resumes, else lastSeq), and absent otherwise.
   */
  private framingProblem(event: SseEvent, message: ServerMessage): string | null {
    if (typeof message !== "object" || message === null) return "data that is not a message object";
    if (event.event !== message.type) return `event name ${event.event} for a ${message.type}`;
    let id: string | undefined;
    if ("seq" in message && message.seq !== undefined) id = String(message.seq);
    else if (message.type === "session") id = String(message.resumed && message.recovered ? this.afterSeq : message.lastSeq);
    return event.id === id ? null : `id ${event.id} where ${id} belongs`;
  }

  get welcome(): SessionEvent {
    return this.record.events[0] as SessionEvent;
  }

  get events(): readonly ServerMessage[] {
    return this.record.events;
  }

  /** Reads chunk by chunk; while paused no read is asked for, so fetch stops taking bytes off the socket. */
  private async read(body: ReadableStream<Uint8Array>, parser: SseParser): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        if (this.paused) await this.paused.promise;
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // Aborted or cut: the stream is over either way.
    }
    this.record.end();
  }

  async send(message: Outgoing): Promise<Answer> {
    const body = typeof message === "string" ? message : JSON.stringify(message);
    const res = await fetch(`${this.session.base}/v1/sessions/${this.session.sessionId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.session.token}`, "content-type": "application/json" },
      body,
    });
    const text = await res.text();
    const json: unknown = text ? JSON.parse(text) : undefined;
    if (res.status === 200) return { ok: true, reply: PongEvent.parse(json) };
    if (res.status === 202) {
      const accepted = MessageAccepted.strict().parse(json);
      const sentId = typeof message === "string" ? undefined : message.id;
      if (accepted.id !== sentId) throw new Error(`202 for ${body.slice(0, 100)} echoes id ${accepted.id}, not ${sentId}`);
      return { ok: true, turn: accepted.turn };
    }
    const { error } = ErrorResponse.parse(json);
    const expected = ERRORS[error.code].status;
    if (res.status !== expected) throw new Error(`${error.code} answered with HTTP ${res.status}; the protocol's table says ${expected}`);
    if (error.retryAfterMs !== undefined && res.headers.get("retry-after") === null) throw new Error(`${error.code} with retryAfterMs but no Retry-After header`);
    return { ok: false, error: { code: error.code, field: error.field, retryable: error.retryable as boolean, retryAfterMs: error.retryAfterMs } };
  }

  /** Frames go out as written: the id on the wire is the scenario's. */
  sentId(id: string): string {
    return id;
  }

  waitFor(predicate: (events: readonly ServerMessage[]) => boolean, label?: string, timeoutMs?: number): Promise<void> {
    return this.record.waitFor(predicate, label, timeoutMs);
  }

  pause(): void {
    if (this.paused) return;
    let resolve = () => {};
    const promise = new Promise<void>((r) => (resolve = r));
    this.paused = { promise, resolve };
  }

  resume(): void {
    const paused = this.paused;
    this.paused = null;
    paused?.resolve();
  }

  async closed(): Promise<LinkClose | null> {
    await this.done;
    return this.closeComment;
  }

  async drop(): Promise<void> {
    this.controller.abort();
    this.resume();
    await this.done;
  }

  /** An event stream has no closing handshake: the client ends it by closing the connection. */
  close(): Promise<void> {
    return this.drop();
  }
}

export const sseDriver: Driver = {
  name: "sse",
  capabilities: { rawFrames: true, pauseReading: true },
  async open(session: SessionTarget, options: OpenOptions = {}): Promise<Link> {
    const controller = new AbortController();
    // What an EventSource sends when it reconnects: the position as Last-Event-ID.
    const position: Record<string, string> = options.afterSeq === undefined ? {} : { "last-event-id": String(options.afterSeq) };
    const res = await fetch(`${session.base}/v1/sessions/${session.sessionId}/events`, {
      headers: { accept: "text/event-stream", authorization: `Bearer ${session.token}`, ...position },
      signal: controller.signal,
    });
    if (res.status !== 200 || !res.body) throw new Error(`the event stream answered HTTP ${res.status}: ${await res.text()}`);
    const link = new SseLink(session, res.body, controller, options.afterSeq);
    await link.waitFor((events) => events[0]?.type === "session", "the welcome");
    return link;
  },
};
