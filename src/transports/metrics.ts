// /metrics with prom-client: one Registry per server (never the global one), the process's default metrics, gauges
// read from the engine at scrape time, and the engine's telemetry hooks as counters and histograms. Every label value
// comes from a fixed set (anything else is "other"): no session id, user id or identity is ever a label.
import { CloseCode, ErrorCode, QuotaLimit } from "@agentwire/protocol";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Broker } from "../broker/broker.js";
import type { AgentError, Engine, LinkTransport, SessionEndReason, Telemetry, TurnReport } from "../engine/index.js";
import type { ConnectionStats } from "./admission.js";

export interface MetricSources {
  engine: Engine;
  stats: ConnectionStats;
  /** Null when the node stands alone. */
  broker: Broker | null;
  nativeUws: boolean;
}

export interface MetricsOptions {
  /** The agent's provider, the `provider` label of upstream metrics (operator's configuration, not a client's). */
  provider: string;
  /** Resolution of the event-loop delay monitor (ms). @default 10 */
  eventLoopMonitoringPrecision?: number;
}

/** What /metrics serves. */
export interface MetricsEndpoint {
  readonly contentType: string;
  text(): Promise<string>;
}

/** The hooks an HttpUpstream takes (see createAgent). */
export interface UpstreamHooks {
  onAttempt(attempt: number): void;
  onRetry(info: { error: AgentError }): void;
  onFailure(error: AgentError): void;
}

const OTHER = "other";
const TURN_STATUSES = new Set(["completed", "cancelled", "failed", "incomplete"]);
const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
/** turn_end reasons: step finishes, the engine's own, cancel reasons, and error codes. */
const TURN_REASONS = new Set<string>([
  "stop",
  "tool_calls",
  "max_tokens",
  "content_filter",
  "incomplete",
  "truncated",
  "max_steps",
  "output_limit",
  "cancelled",
  "interrupted",
  "session_ended",
  ...ERROR_CODES,
]);
const MESSAGE_TYPES = new Set(["input", "tool_result", "cancel", "configure", "resume", "ping"]);
/** Ours, plus what a peer or the network may end a WebSocket with (1005 no status, 1006 abnormal). */
const CLOSE_CODES = new Set<string>([...Object.values(CloseCode).map(String), "1002", "1003", "1005", "1006", "1007", "1008"]);
const QUOTA_LIMITS = new Set<string>(Object.values(QuotaLimit));

const clamp = (allowed: ReadonlySet<string>, value: string): string => (allowed.has(value) ? value : OTHER);

/** Seconds. A first token usually comes within a second or two; slow providers take tens. */
const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60];
const TURN_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
const CANCEL_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const QUEUE_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const APPEND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Bytes: from the default soft limit (16 KiB) past the default hard cap (1 MiB). */
const LAG_BUCKETS = [16_384, 32_768, 65_536, 131_072, 262_144, 524_288, 1_048_576, 2_097_152, 4_194_304, 16_777_216];

/**
 * The server's metrics. Made before the engine (its `telemetry` goes into EngineOptions, `upstream` into the agent),
 * then `observe` points the scrape-time gauges at the engine and the links.
 */
export class ServerMetrics implements MetricsEndpoint {
  readonly registry = new Registry();
  readonly telemetry: Telemetry;
  readonly upstream: UpstreamHooks;
  private sources: MetricSources | null = null;
  /** Merges happen per frame while a link lags: counted here, added to the counter at scrape. */
  private pendingMerges = 0;
  /** The model label values besides "unset" and "other": the operator's allowed models and default (see useModels). */
  private models: ReadonlySet<string> = new Set();

  constructor(options: MetricsOptions) {
    const register = this.registry;
    const registers = [register];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const gauge = (name: string, help: string, read: (s: MetricSources) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          if (self.sources) this.set(read(self.sources));
        },
      });

    gauge("agentwire_sessions", "Sessions held by this node.", (s) => s.engine.sessionCount);
    gauge("agentwire_running_turns", "Turns running on this node.", (s) => s.engine.runningTurns);
    gauge("agentwire_queued_turns", "Turns waiting in this node's admission queue.", (s) => s.engine.queuedTurns);
    gauge("agentwire_websockets", "WebSocket links open.", (s) => s.stats.websockets);
    gauge("agentwire_sse_streams", "SSE streams open.", (s) => s.stats.sseStreams);
    gauge("agentwire_lagging_links", "Links behind their soft limit, watched for stalls.", (s) => s.engine.lagWatch.size);
    new Counter({
      name: "agentwire_memory_refusals_total",
      help: "New sessions and turns refused at the memory budget.",
      registers,
      collect() {
        if (!self.sources) return;
        this.reset();
        this.inc(self.sources.engine.memory.refused);
      },
    });
    gauge("agentwire_broker_ready", "1 when the link to Redis is up, or there is no Redis.", (s) => ((s.broker?.isReady() ?? true) ? 1 : 0));
    gauge("agentwire_native_uws", "1 when the native uWebSockets.js binary is in use.", (s) => (s.nativeUws ? 1 : 0));
    gauge("agentwire_log_bytes", "Characters held by this node's session logs (their byte budget's measure).", (s) => s.engine.logBytes);

    const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) => new Counter<L>({ name, help, labelNames, registers });
    const sessionsCreated = counter("agentwire_sessions_created_total", "Sessions created on this node.");
    const sessionsEnded = counter("agentwire_sessions_ended_total", "Sessions this node ended, by reason (deleted, expired, shutdown).", ["reason"]);
    const opened = counter("agentwire_connections_opened_total", "Stream links accepted, by transport (ws, sse).", ["transport"]);
    const closed = counter("agentwire_connections_closed_total", "Stream links closed, by transport and WebSocket close code (SSE: the server's close code, or aborted).", ["transport", "code"]);
    const turns = counter("agentwire_turns_total", "Turns ended on this node, by turn_end status and reason.", ["status", "reason"]);
    const tokens = counter("agentwire_tokens_total", "Tokens from turns' usage, by direction (in, out) and model (allowed models only, else other).", ["direction", "model"]);
    const messages = counter("agentwire_client_messages_total", "Client messages received, by type.", ["type"]);
    const clientErrors = counter("agentwire_client_errors_total", "Errors answered to client frames and messages, by code.", ["code"]);
    const resumes = counter("agentwire_resumes_total", "Links attached with a resume position, by whether the log still held it.", ["recovered"]);
    const replayed = counter("agentwire_resume_replayed_events_total", "Log events replayed to resuming links.");
    new Counter({
      name: "agentwire_backpressure_merges_total",
      help: "Frames a lagging link's outbox merged away (tokens joined, older progress dropped).",
      registers,
      collect() {
        if (self.pendingMerges === 0) return;
        this.inc(self.pendingMerges);
        self.pendingMerges = 0;
      },
    });
    const slowCloses = counter("agentwire_slow_consumer_closes_total", "Links closed slow_consumer (4000): hard cap, stalled reader, or a replay the log outran.");
    const attempts = counter("agentwire_upstream_attempts_total", "Upstream requests started, retries included.", ["provider"]);
    const retries = counter("agentwire_upstream_retries_total", "Upstream requests retried.", ["provider"]);
    const upstreamErrors = counter("agentwire_upstream_errors_total", "Upstream attempts that failed, by error code.", ["provider", "code"]);
    const takeovers = counter("agentwire_takeovers_total", "Sessions this node took over from a lost owner.");
    const ownerLost = counter("agentwire_owner_lost_turns_total", "Turns of a lost owner closed owner_lost here.");
    const forwarded = counter("agentwire_forwarded_messages_total", "Client messages forwarded to the session's owner node.");
    const forwardTimeouts = counter("agentwire_forward_timeouts_total", "Forwarded messages whose owner did not answer in time.");
    const quotaRefusals = counter("agentwire_quota_refusals_total", "Per-identity quota refusals, by limit.", ["limit"]);
    const queueFull = counter("agentwire_queue_full_total", "Inputs refused queue_full.");

    const histogram = <L extends string = never>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []) =>
      new Histogram<L>({ name, help, buckets, labelNames, registers });
    const ttft = histogram("agentwire_ttft_seconds", "Turn run start to its first text token.", TTFT_BUCKETS);
    const duration = histogram("agentwire_turn_duration_seconds", "Turn accepted to turn_end (queue wait included), by status.", TURN_BUCKETS, ["status"]);
    const cancelLatency = histogram("agentwire_cancel_latency_seconds", "Cancel of a running step to the agent's step settling on its aborted signal.", CANCEL_BUCKETS);
    const queueWait = histogram("agentwire_queue_wait_seconds", "Turn accepted to run start (0 when a slot was free).", QUEUE_BUCKETS);
    const appendLatency = histogram("agentwire_redis_append_seconds", "One log append to Redis, sent to settled.", APPEND_BUCKETS);
    const lagBytes = histogram("agentwire_outbox_lag_bytes", "Most a lagging link held (queued + socket-buffered) in one lag episode.", LAG_BUCKETS);

    collectDefaultMetrics({ register, eventLoopMonitoringPrecision: options.eventLoopMonitoringPrecision ?? 10 });

    const model = (name: string | undefined) => (name === undefined ? "unset" : this.models.has(name) ? name : OTHER);
    this.telemetry = {
      sessionCreated: () => sessionsCreated.inc(),
      sessionEnded: (reason: SessionEndReason) => sessionsEnded.inc({ reason }),
      connectionOpened: (transport: LinkTransport) => opened.inc({ transport }),
      connectionClosed: (transport: LinkTransport, code: number | "aborted") => closed.inc({ transport, code: code === "aborted" ? code : clamp(CLOSE_CODES, String(code)) }),
      clientMessage: (type: string) => messages.inc({ type: clamp(MESSAGE_TYPES, type) }),
      clientError: (code: string) => clientErrors.inc({ code: clamp(ERROR_CODES, code) }),
      turnStarted: (queuedMs: number) => queueWait.observe(queuedMs / 1000),
      turnEnded: (report: TurnReport) => {
        const status = clamp(TURN_STATUSES, report.status);
        turns.inc({ status, reason: clamp(TURN_REASONS, report.reason) });
        duration.observe({ status }, report.durationMs / 1000);
        if (report.ttftMs !== null) ttft.observe(report.ttftMs / 1000);
        const m = model(report.model);
        if (report.inputTokens > 0) tokens.inc({ direction: "in", model: m }, report.inputTokens);
        if (report.outputTokens > 0) tokens.inc({ direction: "out", model: m }, report.outputTokens);
      },
      cancelSettled: (ms: number) => cancelLatency.observe(ms / 1000),
      resumed: (recovered: boolean) => resumes.inc({ recovered: recovered ? "true" : "false" }),
      replayed: (events: number) => replayed.inc(events),
      merged: () => {
        this.pendingMerges++;
      },
      slowConsumerClosed: () => slowCloses.inc(),
      lagEnded: (peakBytes: number) => lagBytes.observe(peakBytes),
      takeover: () => takeovers.inc(),
      // Ended here, but it ran on the lost owner: counted as a turn, with no timings or usage known.
      ownerLostTurn: () => {
        ownerLost.inc();
        turns.inc({ status: "failed", reason: ErrorCode.OwnerLost });
      },
      forwarded: () => forwarded.inc(),
      forwardTimeout: () => forwardTimeouts.inc(),
      quotaRefused: (limit: string) => quotaRefusals.inc({ limit: clamp(QUOTA_LIMITS, limit) }),
      queueFull: () => queueFull.inc(),
      brokerAppend: (ms: number) => appendLatency.observe(ms / 1000),
    };
    const provider = options.provider;
    this.upstream = {
      onAttempt: () => attempts.inc({ provider }),
      onRetry: () => retries.inc({ provider }),
      onFailure: (error) => upstreamErrors.inc({ provider, code: clamp(ERROR_CODES, error.code) }),
    };
  }

  /** The models that are their own `model` label: the operator's list (none when any model goes) and the default. */
  useModels(allowed: readonly string[] | "any", defaultModel: string | undefined): void {
    const models = new Set(allowed === "any" ? [] : allowed);
    if (defaultModel !== undefined) models.add(defaultModel);
    this.models = models;
  }

  /** The engine and links the scrape-time gauges read. */
  observe(sources: MetricSources): void {
    this.sources = sources;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
