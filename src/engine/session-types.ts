// What a session answers and keeps: outcomes of client messages, persisted state, cluster hooks.
import type { ClientMessage, ErrorCode, ServerMessage, ToolDeclaration } from "@agentwire/protocol";
import type { HistoryMessage } from "./agent.js";
import type { EventLog, LogEntry } from "./event-log.js";
import type { MessageIdEntry } from "./message-ids.js";
import type { Principal } from "./quota.js";

/** Why a client message was refused: a code, which transports map through `ERRORS` (HTTP status, close code). */
export interface SubmitError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
  field?: string;
  /** `quota_exceeded` only: which limit. */
  limit?: string;
}

/** `duplicate`: the message id was taken before; nothing was applied again and `turn` is the one it started then. */
export type SubmitOutcome = { ok: true; turn?: string; reply?: ServerMessage; duplicate?: true } | { ok: false; error: SubmitError };

/** What a session persists for takeover by another node: everything but the log (stored apart). */
export interface SessionState {
  model?: string;
  system?: string;
  clientTools: ToolDeclaration[];
  history: HistoryMessage[];
  turnCounter: number;
  /** The window of client message ids taken (absent when empty, and in states saved before it existed). */
  messageIds?: MessageIdEntry[];
  /** The turn running when this was saved: a node taking over ends it `owner_lost` whatever the log still holds. */
  activeTurn?: { id: string; input: string };
  /** Who the session acts for (absent for sessions made without one). */
  principal?: Principal;
}

/** How a replica reaches the owner of its session (another node). */
export interface OwnerLink {
  submit(message: ClientMessage): Promise<SubmitOutcome>;
}

/** Hooks the cluster layer sets on a session it owns. */
export interface OwnerHooks {
  /** A logged event was appended locally (persist and publish it). */
  logged(entry: LogEntry): void;
  /** Configuration or history changed (persist the session state). */
  changed(): void;
}

/** The snapshot is a wire body: its type is the protocol's, so the engine cannot drift from what clients parse. */
export type { SessionSnapshot } from "@agentwire/protocol";

export const refuse = (code: ErrorCode, message: string, extra: Partial<SubmitError> = {}): SubmitOutcome => ({
  ok: false,
  error: { code, message, retryable: false, ...extra },
});

/**
 * What an attached client needs of its session; `A` is the attachment type. An interface here, so
 * attachment.ts and session.ts do not import each other.
 */
export interface AttachedSession<A> {
  readonly id: string;
  readonly log: EventLog;
  readonly activeTurnId: string | null;
  /** The session's clock. */
  readonly now: () => number;
  addAttachment(attachment: A): void;
  removeAttachment(attachment: A): void;
  touch(): void;
  /** Counts one client message against the session's rate: 0 when allowed, else the ms to wait. */
  takeMessage(): number;
  submit(message: ClientMessage, onTurn?: (turnId: string) => void): SubmitOutcome | Promise<SubmitOutcome>;
}
