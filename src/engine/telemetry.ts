// What the engine tells operators' metrics: optional hooks called where something countable happens, a no-op by default.
// The engine keeps no metric objects (none per session either); an implementation (src/transports/metrics.ts) decides
// what to count. No hook runs per token: tokens are counted from a turn's usage when it ends.
import type { TurnStatus } from "@agentwire/protocol";

export type LinkTransport = "ws" | "sse";

/** Why this node ended a session: deleted (by a client or another node), expired idle, or the node closed. */
export type SessionEndReason = "deleted" | "expired" | "shutdown";

/** One ended turn, as metrics and the "turn ended" log line see it: no ids, no text. */
export interface TurnReport {
  status: TurnStatus;
  /** turn_end's reason: a finish (`stop`, `max_tokens`...), a cancel reason, or an error code. */
  reason: string;
  model: string | undefined;
  inputTokens: number;
  outputTokens: number;
  /** Accepted (turn_start) to turn_end, queue wait included (ms). */
  durationMs: number;
  /** Accepted to run start; to turn_end for a turn that never ran (ms). */
  queuedMs: number;
  /** Run start to the first text token (ms); null when no text came. */
  ttftMs: number | null;
  /** Agent steps run. */
  steps: number;
  /** Tool calls executed (server and client). */
  toolCalls: number;
  /** Upstream retries the agent reported (StepSink.retried). */
  retries: number;
}

export interface Telemetry {
  sessionCreated?(): void;
  sessionEnded?(reason: SessionEndReason): void;
  /** A stream link was accepted (after auth and quotas). */
  connectionOpened?(transport: LinkTransport): void;
  /** An accepted stream link closed: its WebSocket close code, or for SSE the code the server closed it with, or `aborted` when the client went. */
  connectionClosed?(transport: LinkTransport, code: number | "aborted"): void;
  /** A parsed client message, by type (stream frames and HTTP POSTs, counted on the node that received them). */
  clientMessage?(type: string): void;
  /** An error answered to a client frame or message, by code. */
  clientError?(code: string): void;
  /** A turn got its slot after waiting `queuedMs` (0 when it started at once). */
  turnStarted?(queuedMs: number): void;
  turnEnded?(report: TurnReport): void;
  /** A cancel reached a running agent step: how long the step took to settle after its signal aborted (ms). */
  cancelSettled?(ms: number): void;
  /** A link attached with a resume position; `recovered`: the log still held everything after it. */
  resumed?(recovered: boolean): void;
  /** Log events replayed to a resuming link (per batch). */
  replayed?(events: number): void;
  /** A lagging link's outbox merged away a frame (tokens joined, older progress dropped). */
  merged?(): void;
  /** A link was closed `slow_consumer` (4000): hard cap, a stalled reader, or a replay the log outran. */
  slowConsumerClosed?(): void;
  /** A lag episode of one link ended (caught up or closed): the most it held, queued plus socket-buffered (bytes). */
  lagEnded?(peakBytes: number): void;
  /** This node took a session over from a lost owner. */
  takeover?(): void;
  /** A turn that ran on a lost owner was closed `owner_lost` here (a turn that ended, though `turnEnded` is not called: nothing of it is known). */
  ownerLostTurn?(): void;
  /** A client message was forwarded to the session's owner on another node. */
  forwarded?(): void;
  /** A forwarded message's owner did not answer in time. */
  forwardTimeout?(): void;
  /** A per-identity quota refused something; `limit` names which. */
  quotaRefused?(limit: string): void;
  /** An input was refused `queue_full`. */
  queueFull?(): void;
  /** One log append to the broker settled after `ms`. */
  brokerAppend?(ms: number, ok: boolean): void;
}

/** Every hook present: the engine calls them without checks. */
export type EngineTelemetry = { readonly [K in keyof Telemetry]-?: NonNullable<Telemetry[K]> };

const noop = (): void => {};

export const NO_TELEMETRY: EngineTelemetry = Object.freeze({
  sessionCreated: noop,
  sessionEnded: noop,
  connectionOpened: noop,
  connectionClosed: noop,
  clientMessage: noop,
  clientError: noop,
  turnStarted: noop,
  turnEnded: noop,
  cancelSettled: noop,
  resumed: noop,
  replayed: noop,
  merged: noop,
  slowConsumerClosed: noop,
  lagEnded: noop,
  takeover: noop,
  ownerLostTurn: noop,
  forwarded: noop,
  forwardTimeout: noop,
  quotaRefused: noop,
  queueFull: noop,
  brokerAppend: noop,
});

/** `telemetry` with a no-op for every hook it lacks (methods of a class instance included, bound to it). */
export function completeTelemetry(telemetry: Telemetry | undefined): EngineTelemetry {
  if (!telemetry) return NO_TELEMETRY;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(NO_TELEMETRY) as (keyof Telemetry)[]) {
    const hook = telemetry[key] as ((...args: never[]) => void) | undefined;
    out[key] = typeof hook === "function" ? hook.bind(telemetry) : noop;
  }
  return Object.freeze(out) as unknown as EngineTelemetry;
}
