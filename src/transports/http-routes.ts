// Plain HTTP routes on the uWS app: session create/delete/snapshot, health and readiness, metrics.
import { ErrorCode } from "../../protocol/index.js";
import type { Engine } from "../engine/index.js";
import type { CorsPolicy } from "./cors.js";
import { extractToken, guard, readRequest, sendError, sendJson } from "./http-util.js";
import type { HttpRequest, HttpResponse, TemplatedApp } from "./uws.js";

export interface HttpRouteOptions {
  /** Readiness beyond "the process runs": e.g. the broker's link. */
  isReady(): boolean;
  /** Prometheus text for /metrics. */
  metrics(): string;
  /** The public base path clients should use for follow-up URLs, e.g. "" or "/agentwire". */
  basePath?: string;
  /** CORS for browser clients on other origins; the SSE routes answer the preflights. */
  cors?: CorsPolicy;
}

const notAllowed = (res: HttpResponse) => {
  const state = { aborted: false };
  sendError(res, state, 405, { code: ErrorCode.MethodNotAllowed, message: "method not allowed on this route" });
};

export function registerHttpRoutes(app: TemplatedApp, engine: Engine, options: HttpRouteOptions): void {
  app.get("/healthz", (res) => sendJson(res, { aborted: false }, 200, { ok: true }));
  app.get("/readyz", (res) => {
    const ready = options.isReady();
    sendJson(res, { aborted: false }, ready ? 200 : 503, { ready });
  });
  app.get("/metrics", (res) => {
    res.cork(() => {
      res.writeStatus("200 OK").writeHeader("content-type", "text/plain; version=0.0.4").end(options.metrics());
    });
  });

  const cors = (req: HttpRequest) => options.cors?.headers(req.getHeader("origin") || undefined) ?? {};

  app.post("/v1/sessions", async (res, req) => {
    const state = guard(res);
    const headers = cors(req);
    const created = await engine.createSession();
    if (!created) {
      sendError(res, state, 503, { code: ErrorCode.Overloaded, message: "session limit reached", retryable: true, retryAfterMs: 5000 }, headers);
      return;
    }
    const base = `${options.basePath ?? ""}/v1/sessions/${created.sessionId}`;
    sendJson(res, state, 201, { ...created, urls: { ws: `${base}/ws`, events: `${base}/events`, messages: `${base}/messages`, snapshot: base } }, headers);
  });
  app.any("/v1/sessions", notAllowed);

  app.get("/v1/sessions/:id", (res, req) => {
    const state = { aborted: false };
    const info = readRequest(res, req);
    const headers = cors(req);
    const session = authorized(engine, req.getParameter(0) ?? "", extractToken(info), res, state, headers);
    if (session) sendJson(res, state, 200, session.snapshot(), headers);
  });
  app.del("/v1/sessions/:id", (res, req) => {
    const state = { aborted: false };
    const info = readRequest(res, req);
    const id = req.getParameter(0) ?? "";
    const headers = cors(req);
    if (!authorized(engine, id, extractToken(info), res, state, headers)) return;
    engine.deleteSession(id);
    sendJson(res, state, 204, null, headers);
  });
}

/** Resolves the session for a request or answers 401/403/404 itself (with `headers`, e.g. CORS). */
export function authorized(engine: Engine, sessionId: string, token: string | undefined, res: HttpResponse, state: { aborted: boolean }, headers: Record<string, string> = {}) {
  if (!token) {
    sendError(res, state, 401, { code: ErrorCode.Unauthorized, message: "a session token is required" }, headers);
    return null;
  }
  const auth = engine.authorize(sessionId, token);
  if (auth.ok) return auth.session;
  if (auth.code === ErrorCode.SessionNotFound) sendError(res, state, 404, { code: auth.code, message: "no such session" }, headers);
  else sendError(res, state, 403, { code: auth.code, message: "wrong token for this session" }, headers);
  return null;
}
