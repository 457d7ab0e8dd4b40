// What every session shares from its engine: the agent, tools, limits, clock and turn accounting.
import type { Agent } from "./agent.js";
import type { Logger } from "../logger.js";
import type { ToolRegistry } from "./tools.js";
import type { QuotaStore } from "./quota.js";
import type { TurnQueue } from "./turn-queue.js";
import type { EngineTelemetry } from "./telemetry.js";

/** What the operator fixes for every session, whatever its clients configure. */
export interface OperatorPolicy {
  /** Models a `configure` (or a credential's pin) may choose, or `any`. One entry pins the model; none: only the default. */
  allowedModels: readonly string[] | "any";
  /** The operator's system prompt: first in every turn's system prompt; a client cannot replace it. */
  system?: string;
  /** Whether a client's `configure.system` is taken (appended after the operator's and the identity's); else `forbidden`. */
  clientSystem: boolean;
}

export const OPEN_POLICY: OperatorPolicy = Object.freeze({ allowedModels: "any", clientSystem: true });

/** Whether `policy` lets a session use `model`. */
export function modelAllowed(allowed: OperatorPolicy["allowedModels"], model: string): boolean {
  return allowed === "any" || allowed.includes(model);
}

export interface EngineLimits {
  /** Events kept per session log. @default 10000 */
  logMaxEvents: number;
  /** Age after which log events are dropped (ms). @default 600000 */
  logMaxAgeMs: number;
  /** Characters of events a session log keeps (see EventLogLimits.maxBytes). @default 1048576 */
  logMaxBytes: number;
  /** Buffered bytes above which a client counts as lagging. @default 16384 */
  outboxSoftBytes: number;
  /** Queued + buffered bytes above which a lagging client is closed with 4000. @default 1048576 */
  outboxHardBytes: number;
  /** Maximum characters of one turn's input, buffered partials included. @default 32768 */
  maxInputChars: number;
  /** Model -> tools -> model rounds per turn. @default 8 */
  maxSteps: number;
  /** How long a client-executed tool may take (ms). @default 30000 */
  clientToolTimeoutMs: number;
  /** A session with no client, no turn and no message for this long is deleted (ms). @default 1800000 */
  sessionIdleMs: number;
  /** Sessions held at once. @default 100000 */
  maxSessions: number;
  /** Turns running at once across all sessions; more wait in the admission queue. @default 1000 */
  maxConcurrentTurns: number;
  /** Turns waiting in the admission queue at once; past it an input is refused `queue_full`. @default 10000 */
  maxQueuedTurns: number;
  /** Longest a turn waits in the queue (ms); then it fails `queue_timeout`. @default 60000 */
  queueTimeoutMs: number;
  /** How often queued turns hear their position, at most (ms). @default 500 */
  queueUpdateMs: number;
  /** Client messages per second per session (sustained). @default 50 */
  inputRatePerSec: number;
  /** Client messages a session may send in a burst. @default 100 */
  inputBurst: number;
  /** Finished turn records kept per session for polling. @default 50 */
  maxTurnsKept: number;
  /** History messages kept per session. @default 200 */
  maxHistoryMessages: number;
  /** Characters of history kept per session (the newest whole messages that fit), tool arguments and results included. @default 262144 */
  maxHistoryChars: number;
  /** Characters of a session's system prompt. @default 32768 */
  maxSystemChars: number;
  /** Characters of a session's client tool declarations, as JSON. @default 65536 */
  maxToolsChars: number;
  /** Characters of text one turn may stream; past it the turn ends `incomplete` / `output_limit`. @default 1048576 */
  maxTurnOutputChars: number;
  /** Characters of one tool call's arguments; past it the turn fails with `upstream_error`. @default 65536 */
  maxToolArgsChars: number;
  /** Longest a turn may run, tools and waits included (ms); then it fails with `upstream_timeout`. @default 600000 */
  turnTimeoutMs: number;
  /** A lagging link that takes nothing for this long is closed with 4000 (ms). @default 15000 */
  slowReaderTimeoutMs: number;
  /** Client message ids a session remembers, so a resent message is answered, not applied again; 0 turns it off. @default 64 */
  messageIdWindow: number;
}

export const defaultLimits: EngineLimits = {
  logMaxEvents: 10_000,
  logMaxAgeMs: 600_000,
  outboxSoftBytes: 16 * 1024,
  outboxHardBytes: 1024 * 1024,
  maxInputChars: 32 * 1024,
  maxSteps: 8,
  clientToolTimeoutMs: 30_000,
  sessionIdleMs: 30 * 60_000,
  maxSessions: 100_000,
  maxConcurrentTurns: 1000,
  maxQueuedTurns: 10_000,
  queueTimeoutMs: 60_000,
  queueUpdateMs: 500,
  inputRatePerSec: 50,
  inputBurst: 100,
  maxTurnsKept: 50,
  maxHistoryMessages: 200,
  maxHistoryChars: 256 * 1024,
  logMaxBytes: 1024 * 1024,
  maxSystemChars: 32 * 1024,
  maxToolsChars: 64 * 1024,
  maxTurnOutputChars: 1024 * 1024,
  maxToolArgsChars: 64 * 1024,
  turnTimeoutMs: 600_000,
  slowReaderTimeoutMs: 15_000,
  messageIdWindow: 64,
};

export interface EngineContext {
  agent: Agent;
  /** Built once from `limits` and shared by every session's log and outbox (memory per session). */
  logLimits: { maxEvents: number; maxAgeMs: number; maxBytes: number };
  outboxLimits: { softBytes: number; hardBytes: number };
  tools: ToolRegistry;
  limits: EngineLimits;
  defaultModel: string | undefined;
  heartbeatMs: number;
  logger: Logger;
  now: () => number;
  /** Capacity and the admission queue: every accepted turn goes through it. */
  queue: TurnQueue;
  /** Per-identity quotas (this node's, or shared through Redis). */
  quotas: QuotaStore;
  policy: OperatorPolicy;
  /** The node-wide memory budget: new sessions and turns are refused while it is exceeded. */
  memory: { readonly overloaded: boolean };
  /** Set when the server shuts down: no new turn starts, running ones may finish. */
  draining(): { retryAfterMs: number } | null;
  /** Where counts and timings go (metrics); no-ops unless the embedder gives hooks. */
  telemetry: EngineTelemetry;
}
