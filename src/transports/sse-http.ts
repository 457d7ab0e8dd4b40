// SSE + HTTP fallback transport on the same engine: event stream, message POSTs, turn polling, CORS.
import { ErrorCode } from "@agentwire/protocol";
import { type Engine, type Logger, QUOTA_STORE_UNAVAILABLE, quotaError } from "../engine/index.js";
import { type AdmissionOptions, type ConnectionStats, admitLink, ssePosition } from "./admission.js";
import { type CorsPolicy, ORIGIN_REFUSAL } from "./cors.js";
import { authorizeRequest, pollTurn, postMessage } from "./http-messages.js";
import { guard, readRequest, safely, sendError } from "./http-util.js";
import { SseSink } from "./sse-sink.js";
import type { HttpRequest, HttpResponse, TemplatedApp } from "./uws.js";

export interface SseRouteOptions extends AdmissionOptions {
  /** Comment heartbeat interval from the moment a stream opens (ms). @default 15000 */
  heartbeatMs: number;
  /** `retry:` hint sent to EventSource clients (ms). @default 2000 */
  retryMs: number;
  /** Largest POST body accepted. */
  maxPayloadBytes: number;
  /** Which browser origins may use the routes and read their answers. */
  cors: CorsPolicy;
  logger: Logger;
}

/** Every route a browser may call cross-origin, with the methods it answers (preflight and 405 `Allow`). */
const ROUTES = {
  sessions: { pattern: "/v1/sessions", allow: "POST, OPTIONS" },
  session: { pattern: "/v1/sessions/:id", allow: "GET, DELETE, OPTIONS" },
  events: { pattern: "/v1/sessions/:id/events", allow: "GET, OPTIONS" },
  messages: { pattern: "/v1/sessions/:id/messages", allow: "POST, OPTIONS" },
  turn: { pattern: "/v1/sessions/:id/turns/:turnId", allow: "GET, OPTIONS" },
} as const;

export function registerSseRoutes(app: TemplatedApp, engine: Engine, options: SseRouteOptions, stats: ConnectionStats): void {
  const { cors } = options;
  const { logger } = options;
  app.get(ROUTES.events.pattern, (res, req) => safely(res, logger, () => openStream(res, req, engine, options, stats, cors)));
  app.post(ROUTES.messages.pattern, (res, req) => safely(res, logger, () => postMessage(res, req, engine, options.maxPayloadBytes, cors)));
  app.get(ROUTES.turn.pattern, (res, req) => safely(res, logger, () => pollTurn(res, req, engine, cors)));

  for (const route of Object.values(ROUTES)) {
    app.options(route.pattern, (res, req) => answerPreflight(res, req, cors, route.allow));
  }
  // `/v1/sessions` answers 405 from http-routes; the other routes get theirs here, with `Allow`.
  for (const route of [ROUTES.session, ROUTES.events, ROUTES.messages, ROUTES.turn]) {
    app.any(route.pattern, (res, req) => {
      const origin = req.getHeader("origin") || undefined;
      const headers = { allow: route.allow, ...cors.headers(origin) };
      sendError(res, { aborted: false }, 405, { code: ErrorCode.MethodNotAllowed, message: `use ${route.allow}`, retryable: false }, headers);
    });
  }
}

function answerPreflight(res: HttpResponse, req: HttpRequest, cors: CorsPolicy, allow: string): void {
  const headers = { allow, ...cors.preflight(req.getHeader("origin") || undefined, allow) };
  res.cork(() => {
    res.writeStatus("204 No Content");
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.endWithoutBody();
  });
}

async function openStream(res: HttpResponse, req: HttpRequest, engine: Engine, options: SseRouteOptions, stats: ConnectionStats, cors: CorsPolicy): Promise<void> {
  const info = readRequest(res, req);
  const sessionId = req.getParameter(0) ?? "";
  const headers = cors.headers(info.headers.origin);
  // The sink exists only once the stream is accepted; an abort before that just marks the state.
  let sink: SseSink | null = null;
  const state = guard(res, () => sink?.aborted());
  // Before the connect rate: a page on a foreign origin must not spend its visitors' share of it.
  if (!cors.allows(info.headers.origin, info.headers.host)) {
    sendError(res, state, ORIGIN_REFUSAL.status, ORIGIN_REFUSAL.error, headers);
    return;
  }
  const refused = admitLink(info, stats, options);
  if (refused) {
    sendError(res, state, refused.status, refused.error, headers);
    return;
  }
  const session = await authorizeRequest(engine, sessionId, info, cors, res, state, headers);
  if (!session) return;
  const position = ssePosition(info);
  if (!position.ok) {
    sendError(res, state, position.refusal.status, position.refusal.error, headers);
    return;
  }
  if (session.isEnded) {
    sendError(res, state, 404, { code: ErrorCode.SessionNotFound, message: "the session has ended", retryable: false }, headers);
    return;
  }

  const admitted = await Promise.resolve(engine.admitConnection(session)).catch(() => null);
  if (!admitted) {
    sendError(res, state, 503, QUOTA_STORE_UNAVAILABLE, headers);
    return;
  }
  if (!admitted.ok) {
    sendError(res, state, 429, quotaError(admitted), headers);
    return;
  }
  if (state.aborted) {
    engine.releaseConnection(session);
    return;
  }
  stats.sseStreams++;
  engine.telemetry.connectionOpened("sse");
  const accepted = new SseSink(res, {
    heartbeatMs: options.heartbeatMs,
    afterSeq: position.afterSeq,
    onEnd: (code) => {
      stats.sseStreams--;
      engine.telemetry.connectionClosed("sse", code);
      engine.releaseConnection(session);
      options.logger.debug({ sessionId }, "sse stream ended");
    },
  });
  sink = accepted;
  // One cork: the head, the opening comment, the welcome and any replay that fits leave in one write.
  res.cork(() => {
    accepted.start(headers, options.retryMs);
    accepted.bind(engine.attach(session, accepted, position.afterSeq));
  });
  options.logger.debug({ sessionId, afterSeq: position.afterSeq }, "sse stream attached");
}
