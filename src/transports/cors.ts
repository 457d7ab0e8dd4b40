// Browser origins: which may use the server at all, which may read our answers (CORS), and what a preflight is told.
import { ErrorCode } from "@agentwire/protocol";

export interface CorsPolicy {
  /**
   * Whether a request from `origin` may use the server at all: yes without an Origin (not a browser), from a
   * listed origin, from the server's own origin (`host`), or from any with `*`. Checked on every /v1 route and
   * on the WebSocket upgrade, where CORS does not apply.
   */
  allows(origin: string | undefined, host: string | undefined): boolean;
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

/** The 403 for a browser page on an origin the server does not allow. */
export const ORIGIN_REFUSAL = {
  status: 403,
  error: { code: ErrorCode.OriginNotAllowed, message: "this origin is not allowed to use the server", retryable: false },
} as const;

/**
 * Builds the policy from configured origins (`AGENTWIRE_ALLOWED_ORIGINS`). `*` allows any origin; tokens
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
    allows(origin, host) {
      if (!enabled || any || origin === undefined) return true;
      const normalized = origin.toLowerCase().replace(/\/+$/, "");
      if (allowed.has(normalized)) return true;
      // The server's own pages (the demo) are same-origin: their Origin names the host they came from.
      return host !== undefined && /^https?:\/\//.test(normalized) && normalized.replace(/^https?:\/\//, "") === host.toLowerCase();
    },
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
