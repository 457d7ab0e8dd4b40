// SSE + HTTP fallback transport on the same engine: event stream, message POSTs, turn polling, CORS.
import type { Engine, KeyedRateLimiter, Logger } from "../engine/index.js";
import type { TemplatedApp } from "./uws.js";
import type { ConnectionStats } from "./uws-websocket.js";

export interface SseRouteOptions {
  /** Comment heartbeat interval from the moment a stream opens (ms). @default 15000 */
  heartbeatMs: number;
  /** `retry:` hint sent to EventSource clients (ms). @default 2000 */
  retryMs: number;
  /** Largest POST body accepted. */
  maxPayloadBytes: number;
  maxConnections: number;
  /** Origins allowed by CORS; "*" allows any; empty sends no CORS headers. */
  corsOrigins: string[];
  connectLimiter: KeyedRateLimiter;
  logger: Logger;
}

export function registerSseRoutes(_app: TemplatedApp, _engine: Engine, _options: SseRouteOptions, _stats: ConnectionStats): void {
  // Filled in by the SSE transport.
}
