// The transport-neutral client the conformance scenarios are written against. A driver opens links to
// a session; a link sends client messages, records what the server streams, and can be slowed or cut.
// WebSocket and SSE + POST are the two drivers today; a client SDK can be the next one (see drivers.ts).
import type { ClientMessage, ErrorCode, LoggedEvent, PongEvent, ServerMessage, SessionEvent } from "@agentwire/protocol";
import type { z } from "zod";

/** A session on a running server: what `POST /v1/sessions` gave, plus the server's `http://` base URL. */
export interface SessionTarget {
  base: string;
  sessionId: string;
  token: string;
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
 * `ack`/`pong`/`error` frame; over HTTP it is the POST's response. Drivers send messages as given:
 * they never add an id or any other field.
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
   * Resolves once `predicate` holds over `events`, checked again as events arrive (no polling). Rejects
   * at once when the link ends with the predicate still false, and after `timeoutMs` (default 10 s).
   */
  waitFor(predicate: (events: readonly ServerMessage[]) => boolean, label?: string, timeoutMs?: number): Promise<void>;
  /** Stops reading the stream (the socket's receive side), so the server sees a slow reader. */
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

export interface Driver {
  readonly name: string;
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
