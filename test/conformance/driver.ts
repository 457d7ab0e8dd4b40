// The transport-neutral client the conformance scenarios are written against. A driver opens links to
// a session; a link sends client messages, records what the server streams, and can be slowed or cut.
// Raw WebSocket, raw SSE + POST, and @agentwire/client over several paths are the drivers (see drivers.ts).
import type { ClientMessage, ErrorCode, LoggedEvent, PongEvent, ServerMessage, SessionEvent } from "@agentwire/protocol";
import type { z } from "zod";

/** A session on a running server: what `POST /v1/sessions` gave, plus the server's `http://` base URL. */
export interface SessionTarget {
  base: string;
  sessionId: string;
  token: string;
}

/** What a running server gives a driver that puts something in front of it. */
export interface ServerAddress {
  /** The server's own `http://` base URL (what `SessionTarget.base` names). */
  base: string;
  port: number;
}

export interface OpenOptions {
  /** Resume after this seq: every later logged event is replayed once, then live events follow. */
  afterSeq?: number;
}

/** A refusal, as a WebSocket `error` frame or an HTTP error body carries it (never its message text). */
export interface AnswerError {
  code: ErrorCode;
  field?: string;
  retryable: boolean;
  retryAfterMs?: number;
}

/**
 * The server's answer to one client message. Taken: `reply` for a message that has one (`ping`), and
 * `turn` when an input that carried an `id` started one (a WebSocket acknowledges only messages with
 * an id; HTTP names the turn either way). Refused: the error. Over WebSocket this is the
 * `ack`/`pong`/`error` frame; over HTTP it is the POST's response. The raw drivers send messages as
 * given (no id or other field added); the SDK gives every message its own id (see `Link.sentId`).
 */
export type Answer = { ok: true; turn?: string; reply?: PongEvent } | { ok: false; error: AnswerError };

/** A client message as a client writes it (defaults may be left out), or a string sent as the exact frame/body. */
export type Outgoing = z.input<typeof ClientMessage> | string;

export interface Link {
  /** The `session` welcome this link opened with (also `events[0]`). */
  readonly welcome: SessionEvent;
  /**
   * Every server message the link's stream delivered, in arrival order: the welcome, logged events,
   * `drain`. Answers to `send` are not in here, so both transports fill it identically.
   */
  readonly events: readonly ServerMessage[];
  /** Sends one message and resolves with the server's answer to it. Sends on one link are answered in order. */
  send(message: Outgoing): Promise<Answer>;
  /**
   * The id that the input sent on this link with `id` carried on the wire, which its `turn_start` echoes:
   * `id` itself for the raw drivers, the client's own for the SDK. Exact expectations of a `turn_start` use it.
   */
  sentId(id: string): string;
  /**
   * Resolves once `predicate` holds over `events`, checked again as events arrive (no polling). Rejects
   * at once when the link ends with the predicate still false, and after `timeoutMs` (default 10 s).
   */
  waitFor(predicate: (events: readonly ServerMessage[]) => boolean, label?: string, timeoutMs?: number): Promise<void>;
  /** Stops reading the stream (the socket's receive side), so the server sees a slow reader. Needs `pauseReading`. */
  pause(): void;
  /** Reads again after `pause`. */
  resume(): void;
  /**
   * Resolves when the link has ended, with why: the WebSocket close code and reason, or over SSE the
   * `: close <code> <reason>` comment that ended the stream; null when the stream ended without one.
   */
  closed(): Promise<LinkClose | null>;
  /** Cuts the connection abruptly, as a network drop would; resolves once it is gone. */
  drop(): Promise<void>;
  /** Ends the link politely. */
  close(): Promise<void>;
}

export interface LinkClose {
  code: number;
  reason: string;
}

/** What a driver can express; a scenario file runs over the drivers that have what it needs (filter `drivers`). */
export interface Capabilities {
  /** Sends a string as the exact frame or body, and objects outside the protocol's types, as written. */
  rawFrames: boolean;
  /** `pause` and `resume` stop and restart reading the socket. */
  pauseReading: boolean;
}

export interface Driver {
  readonly name: string;
  readonly capabilities: Capabilities;
  /**
   * A driver that reaches servers through something in front of them (a proxy, nginx) starts it here, once per
   * server before its first link, and stops it in `teardown`; fixture.ts calls both. Without them links go
   * straight to `SessionTarget.base`.
   */
  setup?(server: ServerAddress): Promise<void>;
  teardown?(server: ServerAddress): Promise<void>;
  /** Opens a link to the session; resolves once its welcome arrived. */
  open(session: SessionTarget, options?: OpenOptions): Promise<Link>;
}

/** Logged events (those with a seq), in order. */
export function logged(events: readonly ServerMessage[]): LoggedEvent[] {
  return events.filter((e): e is LoggedEvent => "seq" in e && typeof e.seq === "number");
}

/** The concatenated token text of one turn. */
export function turnText(events: readonly ServerMessage[], turn: string): string {
  let text = "";
  for (const e of events) if (e.type === "token" && e.turn === turn) text += e.text;
  return text;
}

/**
 * A `waitFor` predicate that holds once some event matches. It scans each event once (waits over
 * long streams stay linear), so make a fresh one per wait.
 */
export function arrived(match: (e: ServerMessage) => boolean): (events: readonly ServerMessage[]) => boolean {
  let scanned = 0;
  return (events) => {
    for (; scanned < events.length; scanned++) if (match(events[scanned] as ServerMessage)) return true;
    return false;
  };
}

/** A `waitFor` predicate: the turn has ended on this link. */
export const turnEnded = (turn: string) => arrived((e) => e.type === "turn_end" && e.turn === turn);

/** The first event of `type` matching `where`, or undefined. */
export function find<T extends ServerMessage["type"]>(events: readonly ServerMessage[], type: T, where: (e: Extract<ServerMessage, { type: T }>) => boolean = () => true): Extract<ServerMessage, { type: T }> | undefined {
  for (const e of events) if (e.type === type && where(e as Extract<ServerMessage, { type: T }>)) return e as Extract<ServerMessage, { type: T }>;
  return undefined;
}
