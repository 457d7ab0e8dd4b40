// Composition root: config -> agent -> engine -> transports -> listen.
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import type { Broker } from "./broker/broker.js";
import type { Config } from "./config.js";
import { AnthropicAgent } from "./agents/anthropic.js";
import { DemoAgent } from "./agents/demo.js";
import { demoTools } from "./agents/demo-tools.js";
import type { RetryInfo } from "./agents/http-upstream.js";
import { OpenAIAgent } from "./agents/openai.js";
import { type Agent, Engine, KeyedRateLimiter, type Logger, ToolRegistry } from "./engine/index.js";
import { ClientAddress, trustedProxies } from "./transports/client-address.js";
import { corsPolicy } from "./transports/cors.js";
import { registerHttpRoutes, registerNotFound } from "./transports/http-routes.js";
import { ServerMetrics, type UpstreamHooks } from "./transports/metrics.js";
import { registerUpgradeRequired, strictApp } from "./transports/http-strict.js";
import { registerSseRoutes } from "./transports/sse-http.js";
import { type ConnectionStats, registerWebSocketRoute } from "./transports/uws-websocket.js";
import { NATIVE_UWS_WARNING, isNativeUws, type us_listen_socket, uws } from "./transports/uws.js";
import { createLogger } from "./log.js";
import { createAuth } from "./auth/index.js";
import { registerMetrics } from "./transports/http-routes.js";

export interface ServerOptions {
  config: Config;
  /** Overrides the agent chosen by AGENTWIRE_AGENT (tests, embedding). */
  agent?: Agent;
  tools?: ToolRegistry;
  logger?: Logger;
}

export interface RunningServer {
  port: number;
  engine: Engine;
  /** Null when the node stands alone (no Redis configured). */
  broker: Broker | null;
  nativeUws: boolean;
  /** The separate metrics listener's port, when AGENTWIRE_METRICS_PORT is set. */
  metricsPort: number | null;
  /** Reads the API key file and the JWKS file again (what SIGHUP does). */
  reloadCredentials(): void;
  /**
   * Stops listening, lets running turns finish for up to `graceMs` (no new turn or session starts;
   * `signal` ends the wait early), then tells clients to reconnect elsewhere and closes every link.
   * @default graceMs 0
   */
  close(options?: { graceMs?: number; signal?: AbortSignal }): Promise<void>;
}

export function createAgent(config: Config, logger?: Logger, hooks?: UpstreamHooks): Agent {
  const upstream = {
    onRetry: (info: RetryInfo) => {
      hooks?.onRetry(info);
      logger?.warn({ attempt: info.attempt, delayMs: info.delayMs, code: info.error.code, reason: info.error.message }, "upstream request retried");
    },
    onAttempt: hooks?.onAttempt,
    onFailure: hooks?.onFailure,
    timeouts: {
      connectMs: config.AGENTWIRE_UPSTREAM_CONNECT_TIMEOUT_MS,
      firstByteMs: config.AGENTWIRE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
      idleMs: config.AGENTWIRE_UPSTREAM_IDLE_TIMEOUT_MS,
    },
    retry: { maxAttempts: config.AGENTWIRE_UPSTREAM_MAX_ATTEMPTS },
    maxEventChars: config.AGENTWIRE_UPSTREAM_MAX_EVENT_BYTES,
    model: config.AGENTWIRE_MODEL,
    historyBudget: config.AGENTWIRE_HISTORY_MAX_TOKENS > 0 ? { maxTokens: config.AGENTWIRE_HISTORY_MAX_TOKENS } : undefined,
  };
  switch (config.AGENTWIRE_AGENT) {
    case "demo":
      return new DemoAgent({
        tokensPerSecond: config.AGENTWIRE_DEMO_TOKENS_PER_SEC,
        seed: config.AGENTWIRE_DEMO_SEED,
        replyWords: config.AGENTWIRE_DEMO_REPLY_WORDS,
      });
    case "openai":
      return new OpenAIAgent({ ...upstream, baseUrl: config.OPENAI_BASE_URL, apiKey: config.OPENAI_API_KEY });
    case "anthropic":
      return new AnthropicAgent({ ...upstream, baseUrl: config.ANTHROPIC_BASE_URL, apiKey: config.ANTHROPIC_API_KEY, maxTokens: config.AGENTWIRE_MAX_OUTPUT_TOKENS });
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const nativeUws = isNativeUws();
  if (!nativeUws) {
    logger.error({ nativeUws }, NATIVE_UWS_WARNING);
    if (config.AGENTWIRE_REQUIRE_NATIVE_UWS) throw new Error(NATIVE_UWS_WARNING);
  }
  // One registry per server (tests run several in one process). Made first: the agent reports its upstream attempts to it.
  const serverMetrics = new ServerMetrics({ provider: options.agent?.name ?? config.AGENTWIRE_AGENT });
  const agent = options.agent ?? createAgent(config, logger, serverMetrics.upstream);
  const isDemo = agent instanceof DemoAgent;
  // Before anything listens or connects: a spending agent without credentials must not start (exit 2).
  const allowedModels = modelPolicy(config, isDemo);
  const defaultModel = config.AGENTWIRE_MODEL ?? (allowedModels === "any" ? undefined : allowedModels[0]);
  serverMetrics.useModels(allowedModels, defaultModel);
  const auth = await createAuth(config, isDemo ? "demo" : config.AGENTWIRE_AGENT === "demo" ? agent.name : config.AGENTWIRE_AGENT, logger, allowedModels);
  const allowedOrigins = (config.AGENTWIRE_ALLOWED_ORIGINS || config.AGENTWIRE_CORS_ORIGINS).split(",").map((o) => o.trim()).filter(Boolean);
  if (allowedOrigins.includes("*") && !isDemo) {
    logger.warn({ allowedOrigins }, "AGENTWIRE_ALLOWED_ORIGINS=* lets any web page use this server from its visitors' browsers");
  }
  // The calculator and clock belong to the demo's script; a provider agent is offered only the tools an embedder registers.
  const tools = options.tools ?? (agent instanceof DemoAgent ? demoTools() : new ToolRegistry());
  let broker: Broker | null;
  try {
    broker = await createBroker(config, logger);
  } catch (err) {
    auth.close();
    throw err;
  }
  if (broker) await awaitBroker(broker, config.AGENTWIRE_REDIS_STARTUP_WAIT_MS, logger);
  const quotas = broker?.quotaStore?.();
  await quotas?.start?.();
  const engine = new Engine({
    broker: broker ?? undefined,
    nodeId: config.AGENTWIRE_NODE_ID,
    cluster: { leaseTtlMs: config.AGENTWIRE_LEASE_TTL_MS, forwardTimeoutMs: config.AGENTWIRE_FORWARD_TIMEOUT_MS, batchMs: config.AGENTWIRE_REDIS_BATCH_MS },
    agent,
    tools,
    defaultModel,
    heartbeatMs: Math.floor((config.AGENTWIRE_WS_IDLE_TIMEOUT_S * 1000) / 2),
    logger,
    limits: {
      logMaxEvents: config.AGENTWIRE_LOG_MAX_EVENTS,
      logMaxAgeMs: config.AGENTWIRE_LOG_MAX_AGE_MS,
      outboxSoftBytes: config.AGENTWIRE_OUTBOX_SOFT_BYTES,
      outboxHardBytes: config.AGENTWIRE_OUTBOX_HARD_BYTES,
      maxInputChars: config.AGENTWIRE_MAX_INPUT_CHARS,
      maxSteps: config.AGENTWIRE_MAX_STEPS,
      clientToolTimeoutMs: config.AGENTWIRE_CLIENT_TOOL_TIMEOUT_MS,
      sessionIdleMs: config.AGENTWIRE_SESSION_IDLE_MS,
      maxSessions: config.AGENTWIRE_MAX_SESSIONS,
      maxConcurrentTurns: config.AGENTWIRE_MAX_CONCURRENT_TURNS,
      inputRatePerSec: config.AGENTWIRE_INPUT_RATE_PER_SESSION,
      inputBurst: config.AGENTWIRE_INPUT_BURST_PER_SESSION,
      maxHistoryMessages: config.AGENTWIRE_HISTORY_MAX_MESSAGES,
      maxHistoryChars: config.AGENTWIRE_HISTORY_MAX_CHARS,
      logMaxBytes: config.AGENTWIRE_LOG_MAX_BYTES,
      maxSystemChars: config.AGENTWIRE_MAX_SYSTEM_CHARS,
      maxToolsChars: config.AGENTWIRE_MAX_TOOLS_CHARS,
      maxTurnOutputChars: config.AGENTWIRE_TURN_MAX_OUTPUT_CHARS,
      maxToolArgsChars: config.AGENTWIRE_MAX_TOOL_ARGS_CHARS,
      turnTimeoutMs: config.AGENTWIRE_TURN_TIMEOUT_MS,
      slowReaderTimeoutMs: config.AGENTWIRE_SLOW_READER_TIMEOUT_MS,
      messageIdWindow: config.AGENTWIRE_MESSAGE_ID_WINDOW,
      maxQueuedTurns: config.AGENTWIRE_MAX_QUEUED_TURNS,
      queueTimeoutMs: config.AGENTWIRE_QUEUE_TIMEOUT_MS,
    },
    policy: {
      allowedModels,
      system: config.AGENTWIRE_SYSTEM_PROMPT,
      clientSystem: config.AGENTWIRE_CLIENT_SYSTEM_PROMPT,
    },
    quotas,
    memory: { maxRssBytes: config.AGENTWIRE_MAX_MEMORY_BYTES || defaultMemoryBudget() },
    telemetry: serverMetrics.telemetry,
  });

  const app = strictApp(uws.App(), { fdHeadroom: config.AGENTWIRE_FD_HEADROOM, logger });
  const stats: ConnectionStats = { websockets: 0, sseStreams: 0 };
  const connectLimiter = new KeyedRateLimiter(config.AGENTWIRE_CONNECT_RATE_PER_IP, config.AGENTWIRE_CONNECT_BURST_PER_IP);
  const proxies = config.AGENTWIRE_TRUSTED_PROXIES;
  const clientAddress = new ClientAddress(proxies.length > 0 ? trustedProxies(proxies) : null);
  const cors = corsPolicy(allowedOrigins);
  const isReady = () => !engine.draining && (broker?.isReady() ?? true);
  serverMetrics.observe({ engine, stats, broker, nativeUws });
  const separateMetrics = config.AGENTWIRE_METRICS_PORT !== undefined;
  // Open on the public port only while nothing else is protected: an operator who requires credentials
  // gets /metrics behind its token or on its own listener.
  const publicMetrics = !separateMetrics && (config.AGENTWIRE_METRICS_TOKEN !== undefined || auth.authenticator.mode === "none");
  if (!separateMetrics && !publicMetrics) logger.warn({ metrics: "off" }, "/metrics is off: set AGENTWIRE_METRICS_TOKEN, or AGENTWIRE_METRICS_PORT for a listener of its own");
  registerHttpRoutes(app, engine, {
    cors,
    logger,
    isReady,
    metrics: publicMetrics ? serverMetrics : null,
    metricsToken: config.AGENTWIRE_METRICS_TOKEN,
    demoPage: config.AGENTWIRE_DEMO_PAGE ?? isDemo,
    authenticator: auth.authenticator,
    clientAddress,
    maxPayloadBytes: config.AGENTWIRE_MAX_PAYLOAD_BYTES,
  });
  registerWebSocketRoute(
    app,
    engine,
    {
      maxPayloadBytes: config.AGENTWIRE_MAX_PAYLOAD_BYTES,
      idleTimeoutS: config.AGENTWIRE_WS_IDLE_TIMEOUT_S,
      maxConnections: config.AGENTWIRE_MAX_CONNECTIONS,
      connectLimiter,
      clientAddress,
      cors,
      logger,
    },
    stats,
  );
  registerSseRoutes(
    app,
    engine,
    {
      heartbeatMs: config.AGENTWIRE_SSE_HEARTBEAT_MS,
      retryMs: config.AGENTWIRE_SSE_RETRY_MS,
      maxPayloadBytes: config.AGENTWIRE_MAX_PAYLOAD_BYTES,
      maxConnections: config.AGENTWIRE_MAX_CONNECTIONS,
      cors,
      connectLimiter,
      clientAddress,
      logger,
    },
    stats,
  );

  registerUpgradeRequired(app);
  registerNotFound(app);

  let listenSocket: us_listen_socket;
  let metricsSocket: us_listen_socket | null = null;
  try {
    listenSocket = await listenExclusive(app, config.HOST, config.PORT);
    if (separateMetrics) {
      const metricsApp = strictApp(uws.App(), { fdHeadroom: 0, logger });
      registerMetrics(metricsApp, serverMetrics, config.AGENTWIRE_METRICS_TOKEN);
      registerNotFound(metricsApp);
      metricsSocket = await listenExclusive(metricsApp, config.AGENTWIRE_METRICS_HOST, config.AGENTWIRE_METRICS_PORT ?? 0).catch((err: unknown) => {
        uws.us_listen_socket_close(listenSocket);
        throw err;
      });
    }
  } catch (err) {
    engine.close();
    auth.close();
    await broker?.close();
    throw err;
  }
  const port = uws.us_socket_local_port(listenSocket);
  const metricsPort = metricsSocket ? uws.us_socket_local_port(metricsSocket) : null;
  logger.info(
    { port, host: config.HOST, agent: agent.name, auth: auth.authenticator.mode, nativeUws, node: engine.nodeId, broker: broker ? "redis" : "none", metricsPort },
    "agentwire listening",
  );

  return {
    port,
    engine,
    broker,
    nativeUws,
    metricsPort,
    reloadCredentials: () => auth.reload(),
    async close({ graceMs = 0, signal } = {}) {
      uws.us_listen_socket_close(listenSocket);
      if (metricsSocket) uws.us_listen_socket_close(metricsSocket);
      auth.close();
      const running = engine.runningTurns;
      if (graceMs > 0 && running > 0) logger.info({ running, graceMs }, "shutting down: letting running turns finish");
      await engine.quiesce(graceMs, config.AGENTWIRE_DRAIN_RECONNECT_MS, signal);
      if (engine.runningTurns > 0) logger.warn({ running: engine.runningTurns }, "shutting down: cutting running turns");
      engine.drain(config.AGENTWIRE_DRAIN_RECONNECT_MS);
      await engine.shutdown();
      await broker?.close();
    },
  };
}

/**
 * Which models clients may choose: the list, or any with `*`. Unset, the demo agent takes any (it spends nothing)
 * and a provider agent only its default: a client cannot move the operator's bill to a dearer model by itself.
 */
export function modelPolicy(config: Config, isDemo: boolean): readonly string[] | "any" {
  const listed = config.AGENTWIRE_ALLOWED_MODELS;
  if (listed.includes("*")) return "any";
  if (listed.length > 0) return listed;
  if (isDemo) return "any";
  return config.AGENTWIRE_MODEL ? [config.AGENTWIRE_MODEL] : [];
}

/**
 * Waits, bounded, for the broker's connections before the node takes traffic: a session created while Redis
 * is still connecting would be stored only at the next lease renewal, and a node that left before that would
 * leave its log unshared. Past the wait the node starts anyway (not ready on /readyz until Redis is).
 */
async function awaitBroker(broker: Broker, waitMs: number, logger: Logger): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!broker.isReady() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!broker.isReady()) logger.warn({ waitedMs: waitMs }, "Redis is not reachable yet: starting, and sharing sessions once it is");
}

/** The port is taken (or the address is not this machine's): the process must not start. */
export class ListenError extends Error {
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(`cannot listen on ${host}:${port}: the port is in use, or the address is not one of this machine's`);
    this.name = "ListenError";
  }
}

/**
 * Listens with the port to itself. uSockets otherwise sets SO_REUSEPORT, and a second server on a busy
 * port would start and silently split the connections (and the sessions) with the first.
 */
function listenExclusive(app: ReturnType<typeof uws.App>, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    const listen = app.listen as unknown as (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => void;
    listen.call(app, host, port, LISTEN_EXCLUSIVE_PORT, (socket) => {
      if (socket) resolve(socket);
      else reject(new ListenError(host, port));
    });
  });
}

/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT (the typings offer it only without a host). */
const LISTEN_EXCLUSIVE_PORT = 1;

/** 80 % of what this process may use: its cgroup's memory limit when it has one, else the machine's RAM. */
export function defaultMemoryBudget(): number {
  let limit = totalmem();
  try {
    const cgroup = readFileSync("/sys/fs/cgroup/memory.max", "utf8").trim();
    if (/^\d+$/.test(cgroup)) limit = Math.min(limit, Number(cgroup));
  } catch {
    // No cgroup v2 limit visible: the machine's memory is the bound.
  }
  return Math.floor(limit * 0.8);
}

/**
 * Redis when REDIS_URL or a cluster node list is set; else none: the node stands alone. The Redis
 * broker (and ioredis with it) is loaded only then: a standalone node does not pay for it.
 */
export async function createBroker(config: Config, logger: Logger): Promise<Broker | null> {
  const nodeId = config.AGENTWIRE_NODE_ID;
  if (config.REDIS_URL || config.AGENTWIRE_REDIS_CLUSTER_NODES) {
    const { RedisBroker } = await import("./broker/broker-redis.js");
    return new RedisBroker({
      url: config.REDIS_URL,
      clusterNodes: config.AGENTWIRE_REDIS_CLUSTER_NODES?.split(","),
      prefix: config.AGENTWIRE_REDIS_PREFIX,
      healthTimeoutMs: config.AGENTWIRE_REDIS_HEALTH_TIMEOUT_MS,
      shardedPubSub: config.AGENTWIRE_REDIS_SHARDED_PUBSUB,
      nodeId,
      logger,
    });
  }
  return null;
}
