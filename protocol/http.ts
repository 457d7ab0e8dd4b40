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
  retryable: z.boolean().optional(),
  retryAfterMs: z.number().int().nonnegative().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Every HTTP error answer: `{ "error": { "code": ..., "message": ... } }`. */
export const ErrorResponse = z.object({ error: ErrorBody });
export type ErrorResponse = z.infer<typeof ErrorResponse>;

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
  status: z.union([z.literal("running"), TurnStatus]),
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
  status: z.union([z.literal("running"), TurnStatus]),
  reason: z.string().nullable(),
  input: z.string(),
  text: z.string(),
  /** Settled when the turn ends; `null` while it runs. */
  usage: z.object({ inputTokens: z.number().int().nonnegative(), outputTokens: z.number().int().nonnegative() }).nullable(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  lastSeq: seq,
});
export type TurnView = z.infer<typeof TurnView>;
