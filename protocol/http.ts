// HTTP bodies: what the session routes answer (create, snapshot, message accepted, turn view) and the error body.
import { z } from "zod";
import { ErrorCode } from "./codes.js";
import { TurnStatus } from "./messages.js";

const seq = z.number().int().nonnegative();
const errorCodes = Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]];

/** The `error` of every non-2xx JSON answer; `retry-after` (seconds) accompanies `retryAfterMs`. */
export const ErrorBody = z.object({
  code: z.enum(errorCodes),
  message: z.string(),
  /** The offending field path, e.g. `text` or `tools.0.name`. */
  field: z.string().optional(),
  /** `quota_exceeded` only: which limit (see `QuotaLimit`). */
  limit: z.string().optional(),
  retryable: z.boolean().optional(),
  retryAfterMs: z.number().int().nonnegative().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Every HTTP error answer: `{ "error": { "code": ..., "message": ... } }`. */
export const ErrorResponse = z.object({ error: ErrorBody });
export type ErrorResponse = z.infer<typeof ErrorResponse>;

/** A turn's status as the HTTP routes show it: `queued` while it waits for a slot in the admission queue. */
export const TurnState = z.union([z.literal("queued"), z.literal("running"), TurnStatus]);
export type TurnState = z.infer<typeof TurnState>;

/** Per-identity limit overrides (0: no limit); names as in `QuotaLimit`. */
export const QuotaOverrides = z.strictObject({
  sessions: z.number().int().nonnegative().optional(),
  connections: z.number().int().nonnegative().optional(),
  turns: z.number().int().nonnegative().optional(),
  sessions_per_minute: z.number().int().nonnegative().optional(),
  tokens_per_minute: z.number().int().nonnegative().optional(),
  tokens_per_day: z.number().int().nonnegative().optional(),
});
export type QuotaOverrides = z.infer<typeof QuotaOverrides>;

/**
 * The optional JSON body of `POST /v1/sessions` from a holder of an operator API key (a JWT carries the same
 * fields as claims, with `sub` for `user`). `model`, `system` and `tools` only narrow the session (a model must be one
 * the operator allows); `limits` set the identity's quotas, above or below the operator's defaults.
 */
export const CreateSessionRequest = z.strictObject({
  /** The end user the session acts for: the identity becomes `<key name>/<user>`, with quotas of its own. */
  user: z.string().min(1).max(128).optional(),
  /** Pins the session's model (it must be one the operator allows); `configure` cannot change it. */
  model: z.string().min(1).max(200).optional(),
  /** A system prompt for this identity, after the operator's and before the client's. */
  system: z.string().max(100_000).optional(),
  /** The only tools the session may use (server tools offered to the model, client tools it may declare). */
  tools: z.array(z.string().min(1).max(64)).max(256).optional(),
  limits: QuotaOverrides.optional(),
});
export type CreateSessionRequest = z.infer<typeof CreateSessionRequest>;

/** `201` to `POST /v1/sessions`. The URLs are paths on this server (behind a prefix when one is configured). */
export const CreateSessionResponse = z.object({
  sessionId: z.string(),
  /** The session's secret: `Authorization: Bearer`, `?token=` or the `bearer.<token>` subprotocol. */
  token: z.string(),
  urls: z.object({ ws: z.string(), events: z.string(), messages: z.string(), snapshot: z.string() }),
});
export type CreateSessionResponse = z.infer<typeof CreateSessionResponse>;

/** `202` to `POST /v1/sessions/:id/messages` for a message that did not answer itself (`ping`, `resume` answer `200` with the reply). */
export const MessageAccepted = z.object({
  ok: z.literal(true),
  /** For an input that started a turn: its id (and a `location: turns/<id>` header). */
  turn: z.string().optional(),
  /** The client's message id, echoed. */
  id: z.string().optional(),
});
export type MessageAccepted = z.infer<typeof MessageAccepted>;

const ToolCallEntry = z.object({ id: z.string(), name: z.string(), args: z.unknown() });

/** One conversation entry as the snapshot shows it. */
export const HistoryEntry = z.discriminatedUnion("role", [
  z.object({ role: z.literal("user"), text: z.string() }),
  z.object({ role: z.literal("assistant"), text: z.string(), toolCalls: z.array(ToolCallEntry).optional() }),
  z.object({ role: z.literal("tool"), callId: z.string(), name: z.string(), output: z.string(), isError: z.boolean() }),
]);
export type HistoryEntry = z.infer<typeof HistoryEntry>;

/** One kept turn in the snapshot; times are ms since epoch. */
export const TurnSummary = z.object({
  id: z.string(),
  input: z.string(),
  status: TurnState,
  reason: z.string().optional(),
  /** Text streamed so far, all steps. */
  text: z.string(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  startedAt: z.number(),
  endedAt: z.number().optional(),
});
export type TurnSummary = z.infer<typeof TurnSummary>;

/** `200` to `GET /v1/sessions/:id`: the state a client rebuilds from when it cannot resume (`recovered: false`). */
export const SessionSnapshot = z.object({
  sessionId: z.string(),
  lastSeq: seq,
  /** The oldest `seq` still in the log: resuming after anything older is `recovered: false`. */
  firstSeq: seq,
  activeTurn: z.string().nullable(),
  /** Non-final input buffered for the next turn. */
  pendingInput: z.string(),
  config: z.object({
    model: z.string().optional(),
    system: z.string().optional(),
    tools: z.array(
      z.object({ name: z.string(), description: z.string(), parameters: z.record(z.string(), z.unknown()) }),
    ),
  }),
  history: z.array(HistoryEntry),
  turns: z.array(TurnSummary),
});
export type SessionSnapshot = z.infer<typeof SessionSnapshot>;

/** `200` to `GET /v1/sessions/:id/turns/:turn`: the polling path; `lastSeq` lets a poller switch to a stream without a gap. */
export const TurnView = z.object({
  turn: z.string(),
  status: TurnState,
  reason: z.string().nullable(),
  input: z.string(),
  text: z.string(),
  /** Settled when the turn ends; `null` while it runs. */
  usage: z.object({ inputTokens: z.number().int().nonnegative(), outputTokens: z.number().int().nonnegative() }).nullable(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  /** While `queued`: turns ahead of it in the admission queue. */
  position: z.number().int().nonnegative().optional(),
  lastSeq: seq,
});
export type TurnView = z.infer<typeof TurnView>;
