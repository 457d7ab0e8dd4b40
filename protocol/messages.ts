// Wire protocol v1: zod schemas for every client and server message, and their inferred types.
import { z } from "zod";
import { TOOL_OUTPUT_MAX_CHARS, TOOL_PARAMETERS_MAX_CHARS, jsonChars } from "./limits.js";

export const PROTOCOL_VERSION = 1;

/** Optional client-chosen id, echoed by the server in `ack` and `error`. */
const clientId = z.string().min(1).max(128).optional();
const turnId = z.string().min(1).max(64);
const seq = z.number().int().nonnegative();

const toolDeclaration = z.strictObject({
  name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
  description: z.string().max(4096).default(""),
  /** JSON Schema of the arguments object; at most TOOL_PARAMETERS_MAX_CHARS characters as JSON. */
  parameters: z
    .record(z.string(), z.unknown())
    .refine((v) => jsonChars(v) <= TOOL_PARAMETERS_MAX_CHARS, `must be at most ${TOOL_PARAMETERS_MAX_CHARS} characters as JSON`)
    .default({ type: "object", properties: {} }),
});
export type ToolDeclaration = z.infer<typeof toolDeclaration>;

// ---- client -> server ----

export const InputMessage = z.strictObject({
  type: z.literal("input"),
  id: clientId,
  text: z.string(),
  /** `false` appends to the pending buffer without starting a turn (typing, voice partials). */
  final: z.boolean().default(true),
  /** `true` cancels the running turn before this input is taken. */
  interrupt: z.boolean().default(false),
});

export const ToolResultMessage = z.strictObject({
  type: z.literal("tool_result"),
  id: clientId,
  callId: z.string().min(1).max(128),
  /** Any JSON value; at most TOOL_OUTPUT_MAX_CHARS characters as JSON. */
  output: z.unknown().refine((v) => jsonChars(v) <= TOOL_OUTPUT_MAX_CHARS, `must be at most ${TOOL_OUTPUT_MAX_CHARS} characters as JSON`),
  isError: z.boolean().default(false),
});

export const CancelMessage = z.strictObject({
  type: z.literal("cancel"),
  id: clientId,
  /** Cancel only if this turn is the running one; omitted: whatever runs. */
  turn: turnId.optional(),
});

export const ConfigureMessage = z.strictObject({
  type: z.literal("configure"),
  id: clientId,
  model: z.string().min(1).max(200).optional(),
  system: z.string().max(100_000).optional(),
  /** Tools the client executes itself; they replace any earlier declaration. */
  tools: z.array(toolDeclaration).max(64).optional(),
});

export const ResumeMessage = z.strictObject({
  type: z.literal("resume"),
  id: clientId,
  /** Replay every logged event with a greater `seq`, then continue live. */
  afterSeq: seq,
});

export const PingMessage = z.strictObject({
  type: z.literal("ping"),
  id: clientId,
});

export const ClientMessage = z.discriminatedUnion("type", [
  InputMessage,
  ToolResultMessage,
  CancelMessage,
  ConfigureMessage,
  ResumeMessage,
  PingMessage,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type InputMessage = z.infer<typeof InputMessage>;
export type ToolResultMessage = z.infer<typeof ToolResultMessage>;
export type CancelMessage = z.infer<typeof CancelMessage>;
export type ConfigureMessage = z.infer<typeof ConfigureMessage>;
export type ResumeMessage = z.infer<typeof ResumeMessage>;
export type PingMessage = z.infer<typeof PingMessage>;
export const CLIENT_MESSAGE_TYPES = ["input", "tool_result", "cancel", "configure", "resume", "ping"] as const;

// ---- server -> client: logged (carry seq and turn) ----

export const TurnStartEvent = z.object({
  type: z.literal("turn_start"),
  seq,
  turn: turnId,
  /** The full input text that started the turn (buffered partials included). */
  input: z.string(),
  /** The client's message id of the final `input` that started it, when it had one. */
  id: z.string().optional(),
});

export const TokenEvent = z.object({
  type: z.literal("token"),
  seq,
  turn: turnId,
  text: z.string(),
  /** Present only on a merged frame (slow reader): the first seq merged into it; `seq` is the last. */
  from: seq.optional(),
});

export const ToolEvent = z.object({
  type: z.literal("tool"),
  seq,
  turn: turnId,
  callId: z.string(),
  /** start: name known; delta: argument JSON fragment; ready: arguments complete; result: output known. */
  phase: z.enum(["start", "delta", "ready", "result"]),
  name: z.string(),
  /** Who runs it: the server, or the client (answer with `tool_result`). */
  executor: z.enum(["server", "client"]),
  argsDelta: z.string().optional(),
  args: z.unknown().optional(),
  output: z.unknown().optional(),
  isError: z.boolean().optional(),
  /** On an error result: a stable code such as `tool_timeout` or `tool_failed`. */
  code: z.string().optional(),
});

export const ProgressEvent = z.object({
  type: z.literal("progress"),
  seq,
  turn: turnId,
  stage: z.string(),
  message: z.string().optional(),
  /** 0..1 when the agent can tell. */
  fraction: z.number().min(0).max(1).optional(),
  /** `stage: "queued"` only: turns ahead of this one in the node's admission queue; 0: it is next (or starts now). */
  position: z.number().int().nonnegative().optional(),
  /** `stage: "queued"` only: the server's estimate of the wait (ms), when it has one. */
  etaMs: z.number().int().nonnegative().optional(),
});

export const UsageEvent = z.object({
  type: z.literal("usage"),
  seq,
  turn: turnId,
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** True when the turn was cut short (cancel, failure): counts cover what was produced so far. */
  partial: z.boolean(),
});

export const TurnStatus = z.enum(["completed", "cancelled", "failed", "incomplete"]);
export type TurnStatus = z.infer<typeof TurnStatus>;

export const TurnEndEvent = z.object({
  type: z.literal("turn_end"),
  seq,
  turn: turnId,
  status: TurnStatus,
  /** Why: `stop`, `max_tokens`, `interrupted`, `cancelled`, an error code, `max_steps`, `truncated`... */
  reason: z.string(),
});

export const ErrorEvent = z.object({
  type: z.literal("error"),
  /** Present when the error belongs to a turn and is logged (upstream failures); absent for protocol errors. */
  seq: seq.optional(),
  turn: turnId.optional(),
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  retryAfterMs: z.number().int().nonnegative().optional(),
  /** The offending field path, e.g. `text` or `tools.0.name`. */
  field: z.string().optional(),
  /** `quota_exceeded` only: which limit (`turns`, `tokens_per_day`...). */
  limit: z.string().optional(),
  /** The client message id this answers. */
  id: z.string().optional(),
});

// ---- server -> client: ephemeral (not logged) ----

export const SessionEvent = z.object({
  type: z.literal("session"),
  sessionId: z.string(),
  protocol: z.literal(PROTOCOL_VERSION),
  /** Highest seq in the session's log right now. */
  lastSeq: seq,
  /** True when this attach replays after a client-given position. */
  resumed: z.boolean(),
  /** False when the requested position is no longer in the log: fetch the snapshot. */
  recovered: z.boolean(),
  /** The running turn, if any. */
  activeTurn: turnId.nullable(),
  /** The server pings at this interval; treat twice of it without traffic as a dead link. */
  heartbeatMs: z.number().int().positive(),
});

export const AckEvent = z.object({
  type: z.literal("ack"),
  id: z.string(),
  /** For an input that started a turn: its id. */
  turn: turnId.optional(),
});

export const PongEvent = z.object({
  type: z.literal("pong"),
  id: z.string().optional(),
  /** Server time, ms since epoch. */
  time: z.number(),
});

export const DrainEvent = z.object({
  type: z.literal("drain"),
  /** Reconnect after this many ms (with jitter), resuming from the last seq. */
  reconnectAfterMs: z.number().int().nonnegative(),
  reason: z.string(),
});

export const ServerMessage = z.discriminatedUnion("type", [
  SessionEvent,
  TurnStartEvent,
  TokenEvent,
  ToolEvent,
  ProgressEvent,
  UsageEvent,
  TurnEndEvent,
  ErrorEvent,
  AckEvent,
  PongEvent,
  DrainEvent,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
export type SessionEvent = z.infer<typeof SessionEvent>;
export type TurnStartEvent = z.infer<typeof TurnStartEvent>;
export type TokenEvent = z.infer<typeof TokenEvent>;
export type ToolEvent = z.infer<typeof ToolEvent>;
export type ProgressEvent = z.infer<typeof ProgressEvent>;
export type UsageEvent = z.infer<typeof UsageEvent>;
export type TurnEndEvent = z.infer<typeof TurnEndEvent>;
export type ErrorEvent = z.infer<typeof ErrorEvent>;
export type AckEvent = z.infer<typeof AckEvent>;
export type PongEvent = z.infer<typeof PongEvent>;
export type DrainEvent = z.infer<typeof DrainEvent>;

/** Events that go into the session log and carry a `seq`. */
export type LoggedEvent = TurnStartEvent | TokenEvent | ToolEvent | ProgressEvent | UsageEvent | TurnEndEvent | (ErrorEvent & { seq: number });

/** Distributes Omit over a union so each member keeps its own fields. */
export type WithoutSeq<T> = T extends unknown ? Omit<T, "seq"> : never;
export type LoggedEventInput = WithoutSeq<LoggedEvent>;
