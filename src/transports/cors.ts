// CORS for the HTTP routes: which origins may read our answers, and what a preflight is told.

export interface CorsPolicy {
  /** Headers for an answer to a request from `origin`; empty when CORS is off or the origin is not allowed. */
  headers(origin: string | undefined): Record<string, string>;
  /** Headers for a preflight from `origin` on a route that allows `methods`; empty when not allowed. */
  preflight(origin: string | undefined, methods: string): Record<string, string>;
}

/** Request headers a browser client needs: the token, JSON bodies, and the position EventSource sends on reconnect. */
const ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID";
/** Response headers outside the CORS safelist that clients read: where to poll a turn, and when to retry. */
const EXPOSED_HEADERS = "Location, Retry-After";
const PREFLIGHT_MAX_AGE_S = "600";

/**
 * Builds the policy from configured origins (`AGENTWIRE_CORS_ORIGINS`). `*` allows any origin; tokens
 * travel in headers or the query, never in cookies, so credentialed CORS is never needed.
 */
export function corsPolicy(origins: readonly string[]): CorsPolicy {
  const any = origins.includes("*");
  const allowed = new Set(origins.filter((o) => o !== "*").map((o) => o.toLowerCase().replace(/\/+$/, "")));
  const enabled = any || allowed.size > 0;

  const allowOrigin = (origin: string | undefined): Record<string, string> | null => {
    if (!enabled) return null;
    if (any) return { "access-control-allow-origin": "*" };
    // Caches must not hand one origin's answer to another: the header depends on the request's Origin.
    if (origin === undefined || !allowed.has(origin.toLowerCase())) return { vary: "Origin" };
    return { "access-control-allow-origin": origin, vary: "Origin" };
  };

  return {
    headers(origin) {
      const base = allowOrigin(origin);
      if (!base || !("access-control-allow-origin" in base)) return base ?? {};
      return { ...base, "access-control-expose-headers": EXPOSED_HEADERS };
    },
    preflight(origin, methods) {
      const base = allowOrigin(origin);
      if (!base || !("access-control-allow-origin" in base)) return base ?? {};
      return {
        ...base,
        "access-control-allow-methods": methods,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": PREFLIGHT_MAX_AGE_S,
      };
    },
  };
}
