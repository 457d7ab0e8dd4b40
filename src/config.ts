// Configuration from environment variables, validated at startup; every knob is documented in the README.
import { z } from "zod";
import { trustedProxies } from "./transports/client-address.js";

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);
const bool = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"])
    .default(def ? "true" : "false")
    .transform((v) => v === "true" || v === "1" || v === "yes");

/** Env var name -> schema. Names are the public contract: see the configuration table in the README. */
export const ConfigSchema = z
  .object({
    PORT: int(8080, 0, 65535),
    HOST: z.string().min(1).default("0.0.0.0"),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    AGENTWIRE_AGENT: z.enum(["demo", "openai", "anthropic"]).default("demo"),
    AGENTWIRE_MODEL: z.string().min(1).optional(),
    AGENTWIRE_DEMO_TOKENS_PER_SEC: z.coerce.number().min(0).max(100_000).default(30),
    AGENTWIRE_DEMO_SEED: int(1),
    AGENTWIRE_DEMO_REPLY_WORDS: int(40, 0, 1_000_000),
    AGENTWIRE_MAX_PAYLOAD_BYTES: int(64 * 1024, 256, 16 * 1024 * 1024),
    AGENTWIRE_MAX_CONNECTIONS: int(100_000, 1),
    /** Descriptors kept free below the open-files limit; past it new requests get 503. 0: no guard. */
    AGENTWIRE_FD_HEADROOM: int(256, 0, 1_000_000),
    AGENTWIRE_MAX_SESSIONS: int(100_000, 1),
    AGENTWIRE_MAX_CONCURRENT_TURNS: int(1000, 1),
    AGENTWIRE_CONNECT_RATE_PER_IP: z.coerce.number().positive().default(20),
    AGENTWIRE_CONNECT_BURST_PER_IP: int(100, 1),
    AGENTWIRE_INPUT_RATE_PER_SESSION: z.coerce.number().positive().default(50),
    AGENTWIRE_INPUT_BURST_PER_SESSION: int(100, 1),
    AGENTWIRE_MAX_INPUT_CHARS: int(32 * 1024, 1),
    AGENTWIRE_LOG_MAX_EVENTS: int(10_000, 16),
    AGENTWIRE_LOG_MAX_AGE_MS: int(600_000, 1000),
    AGENTWIRE_LOG_MAX_BYTES: int(1024 * 1024, 4096),
    AGENTWIRE_MAX_SYSTEM_CHARS: int(32 * 1024, 0),
    AGENTWIRE_MAX_TOOLS_CHARS: int(64 * 1024, 2),
    AGENTWIRE_TURN_MAX_OUTPUT_CHARS: int(1024 * 1024, 1),
    AGENTWIRE_MAX_TOOL_ARGS_CHARS: int(64 * 1024, 2),
    AGENTWIRE_TURN_TIMEOUT_MS: int(600_000, 1000),
    AGENTWIRE_SLOW_READER_TIMEOUT_MS: int(15_000, 100),
    /** RSS past which new sessions and turns are refused; 0: 80 % of the memory the process may use (cgroup limit or RAM). */
    AGENTWIRE_MAX_MEMORY_BYTES: int(0, 0),
    AGENTWIRE_UPSTREAM_MAX_EVENT_BYTES: int(1024 * 1024, 1024),
    AGENTWIRE_SESSION_IDLE_MS: int(1_800_000, 1000),
    AGENTWIRE_WS_IDLE_TIMEOUT_S: int(64, 8, 960),
    AGENTWIRE_OUTBOX_SOFT_BYTES: int(16 * 1024, 1024),
    AGENTWIRE_OUTBOX_HARD_BYTES: int(1024 * 1024, 4096),
    AGENTWIRE_CLIENT_TOOL_TIMEOUT_MS: int(30_000, 10),
    AGENTWIRE_MAX_STEPS: int(8, 1, 100),
    AGENTWIRE_DRAIN_RECONNECT_MS: int(1000, 0),
    AGENTWIRE_SHUTDOWN_GRACE_MS: int(8000, 0, 3_600_000),
    AGENTWIRE_REQUIRE_NATIVE_UWS: bool(false),
    OPENAI_BASE_URL: z.url().default("https://api.openai.com/v1"),
    OPENAI_API_KEY: z.string().default(""),
    ANTHROPIC_BASE_URL: z.url().default("https://api.anthropic.com"),
    ANTHROPIC_API_KEY: z.string().default(""),
    AGENTWIRE_MAX_OUTPUT_TOKENS: int(4096, 1),
    AGENTWIRE_HISTORY_MAX_TOKENS: int(0, 0),
    AGENTWIRE_HISTORY_MAX_MESSAGES: int(200, 2),
    AGENTWIRE_MESSAGE_ID_WINDOW: int(64, 0, 4096),
    AGENTWIRE_HISTORY_MAX_CHARS: int(256 * 1024, 1024),
    AGENTWIRE_UPSTREAM_CONNECT_TIMEOUT_MS: int(15_000, 1),
    AGENTWIRE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS: int(60_000, 1),
    AGENTWIRE_UPSTREAM_IDLE_TIMEOUT_MS: int(30_000, 1),
    AGENTWIRE_UPSTREAM_MAX_ATTEMPTS: int(3, 1, 10),
    REDIS_URL: z.string().regex(/^rediss?:\/\//, "must start with redis:// or rediss://").optional(),
    AGENTWIRE_REDIS_CLUSTER_NODES: z.string().regex(/^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$/, "must be host:port[,host:port...]").optional(),
    AGENTWIRE_REDIS_PREFIX: z.string().min(1).max(64).default("aw:"),
    AGENTWIRE_REDIS_STARTUP_WAIT_MS: int(5000, 0, 600_000),
    /** Ready only while Redis answered a PING within this long. */
    AGENTWIRE_REDIS_HEALTH_TIMEOUT_MS: int(1000, 100, 60_000),
    AGENTWIRE_REDIS_SHARDED_PUBSUB: bool(true),
    AGENTWIRE_NODE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
    AGENTWIRE_LEASE_TTL_MS: int(5000, 200),
    AGENTWIRE_FORWARD_TIMEOUT_MS: int(3000, 50),
    AGENTWIRE_REDIS_BATCH_MS: int(0, 0, 1000),
    AGENTWIRE_SSE_HEARTBEAT_MS: int(15_000, 100),
    AGENTWIRE_SSE_RETRY_MS: int(2000, 0),
    /** Comma-separated origins allowed by CORS; "*" allows any. Empty: no CORS headers. Superseded by AGENTWIRE_ALLOWED_ORIGINS. */
    AGENTWIRE_CORS_ORIGINS: z.string().default(""),
    /** Comma-separated browser origins that may use the server (upgrade, SSE, every /v1 route, CORS). "*": any (unsafe with real keys). Empty: CORS off, no Origin check. */
    AGENTWIRE_ALLOWED_ORIGINS: z.string().default(""),
    /** `auto`: open with the demo agent, else credentials required (and the server will not start without any). `none`: open mode. `required`. */
    AGENTWIRE_AUTH: z.enum(["auto", "none", "required"]).default("auto"),
    /** Operator API keys: `name=secret` or `name=sha256:<hex>`, comma-separated. */
    AGENTWIRE_API_KEYS: z.string().default(""),
    /** A file of API keys, one `name=...` per line; reloaded on SIGHUP and when it changes. */
    AGENTWIRE_API_KEYS_FILE: z.string().min(1).optional(),
    AGENTWIRE_JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
    AGENTWIRE_JWKS_FILE: z.string().min(1).optional(),
    AGENTWIRE_JWKS_URL: z.url().optional(),
    AGENTWIRE_JWT_ISSUER: z.string().min(1).optional(),
    AGENTWIRE_JWT_AUDIENCE: z.string().min(1).optional(),
    AGENTWIRE_JWT_MAX_LIFETIME_S: int(3600, 1),
    AGENTWIRE_JWT_CLOCK_TOLERANCE_S: int(5, 0, 300),
    AGENTWIRE_IDENTITY_MAX_SESSIONS: int(100),
    AGENTWIRE_IDENTITY_MAX_CONNECTIONS: int(200),
    AGENTWIRE_IDENTITY_MAX_TURNS: int(20),
    AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: int(120),
    AGENTWIRE_IDENTITY_TOKENS_PER_MINUTE: int(0),
    AGENTWIRE_IDENTITY_TOKENS_PER_DAY: int(0),
    /** Comma-separated models a client may choose (one entry pins it), or `*` for any. Empty: any with the demo agent, else only AGENTWIRE_MODEL. */
    AGENTWIRE_ALLOWED_MODELS: z
      .string()
      .default("")
      .transform((v) => v.split(",").map((e) => e.trim()).filter(Boolean)),
    /** The operator's system prompt: first in every turn; clients add to it, never replace it. */
    AGENTWIRE_SYSTEM_PROMPT: z.string().max(100_000).optional(),
    /** Whether clients may add a system prompt with `configure` (after the operator's and the token's). */
    AGENTWIRE_CLIENT_SYSTEM_PROMPT: bool(true),
    AGENTWIRE_MAX_QUEUED_TURNS: int(10_000, 0),
    AGENTWIRE_QUEUE_TIMEOUT_MS: int(60_000, 100),
    /** Bearer token /metrics requires. */
    AGENTWIRE_METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
    /** A separate listener for /metrics (then absent from the public port). */
    AGENTWIRE_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    AGENTWIRE_METRICS_HOST: z.string().min(1).default("127.0.0.1"),
    /** The demo chat page at `/`. Default: on with the demo agent only. */
    AGENTWIRE_DEMO_PAGE: z
      .enum(["true", "false", "1", "0", "yes", "no"])
      .transform((v) => v === "true" || v === "1" || v === "yes")
      .optional(),
    /** Comma-separated proxy addresses or CIDR ranges whose X-Forwarded-For names the client. Empty: none. */
    AGENTWIRE_TRUSTED_PROXIES: z
      .string()
      .default("")
      .transform((v) => v.split(",").map((e) => e.trim()).filter(Boolean)),
  })
  .superRefine((c, ctx) => {
    if (c.AGENTWIRE_AGENT === "anthropic" && !c.ANTHROPIC_API_KEY) {
      ctx.addIssue({ code: "custom", path: ["ANTHROPIC_API_KEY"], message: "is required when AGENTWIRE_AGENT=anthropic" });
    }
    // Local OpenAI-compatible servers often need no key; OpenAI itself always does.
    if (c.AGENTWIRE_AGENT === "openai" && !c.OPENAI_API_KEY && new URL(c.OPENAI_BASE_URL).hostname === "api.openai.com") {
      ctx.addIssue({ code: "custom", path: ["OPENAI_API_KEY"], message: "is required for api.openai.com" });
    }
    try {
      trustedProxies(c.AGENTWIRE_TRUSTED_PROXIES);
    } catch (err) {
      ctx.addIssue({ code: "custom", path: ["AGENTWIRE_TRUSTED_PROXIES"], message: (err as Error).message });
    }
    const models = c.AGENTWIRE_ALLOWED_MODELS;
    if (c.AGENTWIRE_MODEL && models.length > 0 && !models.includes("*") && !models.includes(c.AGENTWIRE_MODEL)) {
      ctx.addIssue({ code: "custom", path: ["AGENTWIRE_MODEL"], message: "must be one of AGENTWIRE_ALLOWED_MODELS" });
    }
    if (c.AGENTWIRE_OUTBOX_HARD_BYTES <= c.AGENTWIRE_OUTBOX_SOFT_BYTES) {
      ctx.addIssue({ code: "custom", path: ["AGENTWIRE_OUTBOX_HARD_BYTES"], message: "must be greater than AGENTWIRE_OUTBOX_SOFT_BYTES" });
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(problems.map((p) => `${p.variable}: ${p.message}`).join("; "));
    this.name = "ConfigError";
  }
}

/** Reads the configuration from `env`; unknown variables are ignored, empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(ConfigSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") picked[key] = value;
  }
  const result = ConfigSchema.safeParse(picked);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => ({ variable: String(i.path[0] ?? "config"), message: i.message })));
  }
  return result.data;
}

/** Builds a config for tests and embedding: defaults plus overrides, validated the same way. */
export function configFrom(overrides: Partial<Record<keyof Config, string | number | boolean>>): Config {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) env[k] = String(v);
  return loadConfig(env);
}
