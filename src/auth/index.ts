// Builds session-creation auth from the configuration, and refuses to start a spending server that anyone could use.
import { isIP } from "node:net";
import { type Config, ConfigError } from "../config.js";
import type { Logger, OperatorPolicy, QuotaLimits } from "../engine/index.js";
import { ApiKeys } from "./api-keys.js";
import { Authenticator } from "./authenticator.js";
import type { JwtVerifier } from "./jwt.js";

export { Authenticator, type Authenticated } from "./authenticator.js";
export { ApiKeys, newApiKey, parseApiKeys, digestOf } from "./api-keys.js";

export interface Auth {
  authenticator: Authenticator;
  /** Reads the key file and the JWKS file again (SIGHUP). */
  reload(): void;
  close(): void;
}

/** The per-identity limits of the configuration. */
export function identityLimits(config: Config): QuotaLimits {
  return {
    sessions: config.AGENTWIRE_IDENTITY_MAX_SESSIONS,
    connections: config.AGENTWIRE_IDENTITY_MAX_CONNECTIONS,
    turns: config.AGENTWIRE_IDENTITY_MAX_TURNS,
    sessions_per_minute: config.AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE,
    tokens_per_minute: config.AGENTWIRE_IDENTITY_TOKENS_PER_MINUTE,
    tokens_per_day: config.AGENTWIRE_IDENTITY_TOKENS_PER_DAY,
  };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}

/**
 * The auth of a server running `agentName`. Open mode is the default only for the demo agent, which spends
 * nothing; a spending agent without credentials configured is a configuration error unless open mode is chosen.
 */
export async function createAuth(config: Config, agentName: string, logger: Logger, allowedModels: OperatorPolicy["allowedModels"]): Promise<Auth> {
  const problem = (variable: string, message: string) => new ConfigError([{ variable, message }]);
  let keys: ApiKeys | null = null;
  let jwt: JwtVerifier | null = null;
  try {
    if (config.AGENTWIRE_API_KEYS || config.AGENTWIRE_API_KEYS_FILE) {
      keys = new ApiKeys(config.AGENTWIRE_API_KEYS, config.AGENTWIRE_API_KEYS_FILE, (error, count) => {
        if (error) logger.error({ error, keys: count }, "API key file not reloaded: keeping the previous keys");
        else logger.info({ keys: count }, "API keys reloaded");
      });
    }
  } catch (err) {
    throw problem(config.AGENTWIRE_API_KEYS_FILE && !String((err as Error).message).startsWith("AGENTWIRE_API_KEYS:") ? "AGENTWIRE_API_KEYS_FILE" : "AGENTWIRE_API_KEYS", (err as Error).message);
  }
  try {
    // jose (and its hundred modules) loads only where tokens are configured: a server without them never pays for it.
    if (config.AGENTWIRE_JWT_SECRET || config.AGENTWIRE_JWKS_FILE || config.AGENTWIRE_JWKS_URL) {
      const { JwtVerifier } = await import("./jwt.js");
      jwt = new JwtVerifier({
      secret: config.AGENTWIRE_JWT_SECRET,
      jwksFile: config.AGENTWIRE_JWKS_FILE,
      jwksUrl: config.AGENTWIRE_JWKS_URL,
      issuer: config.AGENTWIRE_JWT_ISSUER,
      audience: config.AGENTWIRE_JWT_AUDIENCE,
      maxLifetimeS: config.AGENTWIRE_JWT_MAX_LIFETIME_S,
      clockToleranceS: config.AGENTWIRE_JWT_CLOCK_TOLERANCE_S,
      });
    }
  } catch (err) {
    throw problem("AGENTWIRE_JWKS_FILE", (err as Error).message);
  }
  const credentials = keys !== null || jwt !== null;
  let mode: "none" | "required";
  if (config.AGENTWIRE_AUTH === "none") mode = "none";
  else if (config.AGENTWIRE_AUTH === "required" || credentials) mode = "required";
  else if (agentName === "demo") mode = "none";
  else {
    throw problem(
      "AGENTWIRE_AUTH",
      `the ${agentName} agent spends the operator's model budget, and no credentials are configured: set AGENTWIRE_API_KEYS, AGENTWIRE_API_KEYS_FILE, AGENTWIRE_JWT_SECRET, AGENTWIRE_JWKS_FILE or AGENTWIRE_JWKS_URL, or AGENTWIRE_AUTH=none to let anyone who reaches the port use it`,
    );
  }
  if (mode === "required" && !credentials) throw problem("AGENTWIRE_AUTH", "is required, but no API key or token key is configured");
  if (mode === "none" && !isLoopback(config.HOST)) {
    logger.warn({ host: config.HOST, agent: agentName }, "open mode on a non-loopback address: anyone who reaches this port can create sessions and run turns (set API keys or a token key to require credentials)");
  }
  keys?.watch(1000);
  const authenticator = new Authenticator({ mode, keys, jwt, defaults: identityLimits(config), allowedModels });
  return {
    authenticator,
    reload() {
      keys?.reload();
      try {
        jwt?.reload();
      } catch (err) {
        logger.error({ error: (err as Error).message }, "JWKS file not reloaded: keeping the previous keys");
      }
    },
    close() {
      keys?.close();
    },
  };
}
