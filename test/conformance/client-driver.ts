// The SDK driver: each link is an `AgentwireClient` from @agentwire/client, so the scenarios run through the client
// an application uses. Client messages become the client's calls (input: `send` or `type`; cancel, configure,
// tool_result); the client gives every message its own id, so exact `turn_start` expectations use `Link.sentId`.
// It cannot write raw frames or pause its socket: see `capabilities`. A drop cuts the client's own socket or event
// stream (no close frame), waits for the client to notice, and stops it: the scenario opens the next link itself.
import { isDeepStrictEqual } from "node:util";
import WebSocket from "ws";
import { AgentwireClient, AgentwireError, type ConnectionState, memoryStore } from "@agentwire/client";
import type { ErrorCode, ServerMessage, SessionEvent } from "@agentwire/protocol";
import { type Answer, type Capabilities, type Driver, type Link, type LinkClose, type OpenOptions, type Outgoing, type ServerAddress, type SessionTarget, find, turnText } from "./driver.js";
import { EventRecord } from "./event-record.js";

type Transport = "websocket" | "sse";

/** Something between the client and one server: a TCP proxy, nginx. */
export interface Front {
  base: string;
  close(): Promise<void>;
}

export interface ClientDriverOptions {
  name: string;
  transport: "auto" | Transport;
  /** The transport every link must be on once connected, and stay on; a link anywhere else fails its waits. */
  expect: Transport;
  /** Started for each server in `setup`; without it the client talks to the server directly. */
  front?: (server: ServerAddress) => Promise<Front>;
}

const CAPABILITIES: Capabilities = { rawFrames: false, pauseReading: false };

/** A refusal as the suite's answer. The client's own codes (closed, queue full) are no answer from the server. */
function refusal(err: unknown): Answer {
  if (!(err instanceof AgentwireError) || err.code === "client_closed" || err.code === "outbox_full" || err.code === "unreachable") throw err;
  return { ok: false, error: { code: err.code as ErrorCode, field: err.field, retryable: err.retryable, retryAfterMs: err.retryAfterMs } };
}

const settle = (call: Promise<void>): Promise<Answer> => call.then(() => ({ ok: true }), refusal);

/** Ack, pong and errors without a seq answer a message; the rest is the stream the other drivers record. */
type AnswerFrame = Extract<ServerMessage, { type: "ack" | "pong" | "error" }>;
const isAnswer = (m: ServerMessage): m is AnswerFrame => m.type === "ack" || m.type === "pong" || (m.type === "error" && m.seq === undefined);

class ClientLink implements Link {
  readonly record = new EventRecord();
  readonly client: AgentwireClient;
  private readonly sockets = new Set<WebSocket>();
  private readonly streams = new Set<AbortController>();
  private readonly acks = new Map<string, (ack: Extract<ServerMessage, { type: "ack" }>) => void>();
  private readonly ids = new Map<string, string>();
  private readonly stopped: Promise<LinkClose>;
  private dropping = false;

  constructor(url: string, session: SessionTarget, afterSeq: number | undefined, options: ClientDriverOptions) {
    const sockets = this.sockets;
    // The client's own sockets and event streams, so a drop can cut them as the network would.
    class TrackedWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets.add(this);
        this.once("close", () => sockets.delete(this));
      }
    }
    const trackedFetch: typeof fetch = (input, init) => {
      if (!new URL(String(input)).pathname.endsWith("/events")) return fetch(input, init);
      const cut = new AbortController();
      this.streams.add(cut);
      return fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, cut.signal]) : cut.signal });
    };
    this.client = new AgentwireClient({
      url,
      session: afterSeq === undefined ? { sessionId: session.sessionId, token: session.token } : { sessionId: session.sessionId, token: session.token, lastSeq: afterSeq },
      WebSocket: TrackedWebSocket,
      fetch: trackedFetch,
      store: memoryStore(),
      transport: options.transport,
      // The fallback gives up on WebSocket after failed attempts: keep their backoff short.
      reconnect: { baseMs: 5, maxMs: 20 },
    });
    const acked = new Set<string>();
    let loggedError = false;
    this.client.on("message", (m) => {
      loggedError = m.type === "error" && m.seq !== undefined;
      if (!isAnswer(m)) return this.record.push(m);
      if (m.type === "pong" || m.id === undefined) return;
      // An ack is final: on one link (reconnects fail it, below) nothing else answers that message.
      if (acked.has(m.id)) this.record.fail(new Error(`a second answer to message ${m.id}: ${JSON.stringify(m)}`));
      if (m.type !== "ack") return;
      acked.add(m.id);
      this.acks.get(m.id)?.(m);
    });
    // The client reports an error that answers none of its messages; a turn's logged error comes right after its event.
    this.client.on("error", (err) => {
      if (loggedError) loggedError = false;
      else this.record.fail(new Error(`an error that answers no message of the client: ${err.code} ${err.message}`));
    });
    // The client's `Turn` must end with what its events said: status, reason, every byte of text, the last usage.
    this.client.on("turn", (turn) => {
      turn.done.then((result) => {
        const events = this.record.events;
        const end = find(events, "turn_end", (e) => e.turn === turn.id);
        const usage = events.filter((e) => e.type === "usage" && e.turn === turn.id).at(-1);
        const expected = {
          status: end?.status,
          reason: end?.reason,
          text: turnText(events, turn.id as string),
          usage: usage?.type === "usage" ? { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens } : null,
        };
        if (!isDeepStrictEqual(result, expected)) this.record.fail(new Error(`turn ${turn.id} ended ${JSON.stringify(result)}; its events say ${JSON.stringify(expected)}`));
      }, () => undefined);
    });
    let onStop: (close: LinkClose) => void = () => {};
    this.stopped = new Promise((resolve) => (onStop = resolve));
    this.client.on("state", (s: ConnectionState) => {
      if (s.status === "closed") {
        this.record.end();
        onStop({ code: s.reason?.code ?? 0, reason: s.reason?.message ?? "" });
      } else if ((s.status === "open" || s.status === "fallback") && s.transport !== options.expect) {
        this.record.fail(new Error(`the client is ${s.status} on ${s.transport}, not on ${options.expect}`));
      } else if (s.status === "reconnecting" && this.record.events.length > 0 && !this.dropping) {
        // Nothing in a scenario cuts a link but `drop`: a reconnect here is a lost link, however well it resumes.
        this.record.fail(new Error(`the client lost its link (${s.reason?.code} ${s.reason?.message}) and reconnects`));
      }
    });
  }

  async connect(expect: Transport): Promise<void> {
    await this.client.connect();
    const { status, transport } = this.client.state;
    if (transport !== expect) throw new Error(`the client connected ${status} on ${transport}, not on ${expect}`);
    await this.waitFor((events) => events[0]?.type === "session", "the welcome");
  }

  get welcome(): SessionEvent {
    return this.record.events[0] as SessionEvent;
  }

  get events(): readonly ServerMessage[] {
    return this.record.events;
  }

  send(message: Outgoing): Promise<Answer> {
    if (typeof message === "string") throw new Error("the client cannot send a raw frame (capabilities.rawFrames)");
    switch (message.type) {
      case "input": {
        const interrupt = message.interrupt ?? false;
        if (message.final === false) return settle(this.client.type(message.text, { interrupt }));
        return this.input(message.text, interrupt, message.id);
      }
      case "cancel":
        return settle(this.client.cancel(message.turn));
      case "configure": {
        const { type: _type, id: _id, ...config } = message;
        return settle(this.client.configure(config));
      }
      case "tool_result":
        return settle(this.client.toolResult(message.callId, message.output, message.isError ?? false));
      default:
        // The client pings on its own when a link is quiet, and resumes by reconnecting: neither is a call.
        throw new Error(`the client has no call that sends a ${message.type} message`);
    }
  }

  /** A final input: the answer is its ack (with the turn it started) or the refusal its turn rejects with. */
  private input(text: string, interrupt: boolean, scenarioId: string | undefined): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      // The ack comes in a later read than this call: registering its handler after `send` returns is in time.
      const turn = this.client.send(text, { interrupt });
      const id = turn.messageId as string;
      if (scenarioId !== undefined) this.ids.set(scenarioId, id);
      this.acks.set(id, (ack) => {
        this.acks.delete(id);
        resolve({ ok: true, turn: ack.turn });
      });
      turn.done.catch((err: unknown) => {
        this.acks.delete(id);
        try {
          resolve(refusal(err));
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  }

  sentId(id: string): string {
    const sent = this.ids.get(id);
    if (sent === undefined) throw new Error(`no input with id ${id} was sent on this link`);
    return sent;
  }

  waitFor(predicate: (events: readonly ServerMessage[]) => boolean, label?: string, timeoutMs?: number): Promise<void> {
    return this.record.waitFor(predicate, label, timeoutMs);
  }

  pause(): void {
    throw new Error("the client cannot pause its socket reads (capabilities.pauseReading)");
  }

  resume(): void {
    throw new Error("the client cannot pause its socket reads (capabilities.pauseReading)");
  }

  /** When the client stopped (a terminal close code, `close`, `drop`). Any other end, a 4000 say, it answers with a reconnect. */
  closed(): Promise<LinkClose> {
    return this.stopped;
  }

  async drop(): Promise<void> {
    this.dropping = true;
    const noticed = new Promise<void>((resolve) => {
      if (this.client.state.status !== "open" && this.client.state.status !== "fallback") return resolve();
      const off = this.client.on("state", (s) => {
        if (s.status === "open" || s.status === "fallback") return;
        off();
        resolve();
      });
    });
    for (const ws of this.sockets) ws.terminate();
    for (const stream of this.streams) stream.abort();
    await noticed;
    // Before its reconnect timer can fire: the link ends here, and the scenario resumes on a link of its own.
    await this.close();
  }

  /** Rejects with what went wrong on the link after the scenario's last wait (a turn's end, a second answer). */
  async close(): Promise<void> {
    const gone = [...this.sockets].map((ws) => new Promise((resolve) => ws.once("close", resolve)));
    this.client.close();
    await Promise.all(gone);
    await this.stopped;
    if (this.record.failure) throw this.record.failure;
  }
}

export function clientDriver(options: ClientDriverOptions): Driver {
  const fronts = new Map<string, Front>();
  const start = options.front;
  const hooks: Pick<Driver, "setup" | "teardown"> = start
    ? {
        async setup(server) {
          fronts.set(server.base, await start(server));
        },
        async teardown(server) {
          const front = fronts.get(server.base);
          fronts.delete(server.base);
          await front?.close();
        },
      }
    : {};
  return {
    name: options.name,
    capabilities: CAPABILITIES,
    ...hooks,
    async open(session: SessionTarget, { afterSeq }: OpenOptions = {}): Promise<Link> {
      const front = fronts.get(session.base);
      if (start && !front) throw new Error(`${options.name}: setup() was not called for ${session.base}`);
      const link = new ClientLink(front?.base ?? session.base, session, afterSeq, options);
      try {
        await link.connect(options.expect);
      } catch (err) {
        link.client.close();
        throw err;
      }
      return link;
    },
  };
}
