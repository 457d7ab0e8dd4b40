// Plain HTTP routes on the uWS app: session create/delete/snapshot, health and readiness, metrics.
import { ErrorCode } from "@agentwire/protocol";
import type { Engine, Logger } from "../engine/index.js";
import type { CorsPolicy } from "./cors.js";
import { readClientBundle } from "./client-bundle.js";
import { DEMO_PAGE } from "./demo-page.js";
import { authorizeRequest } from "./http-messages.js";
import { extractToken, guard, readRequest, safely, sendError, sendJson } from "./http-util.js";
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
  /** Where a handler's unexpected failure is reported (it is answered 500, never thrown). */
  logger: Logger;
}

const notAllowed = (res: HttpResponse) => {
  const state = { aborted: false };
  sendError(res, state, 405, { code: ErrorCode.MethodNotAllowed, message: "method not allowed on this route" });
};

export function registerHttpRoutes(app: TemplatedApp, engine: Engine, options: HttpRouteOptions): void {
  app.get("/", (res) => {
    res.cork(() => {
      res.writeStatus("200 OK").writeHeader("content-type", "text/html; charset=utf-8").writeHeader("cache-control", "no-cache").end(DEMO_PAGE);
    });
  });
  const bundle = readClientBundle();
  app.get("/agentwire-client.js", (res) => {
    res.cork(() => {
      if (bundle === null) {
        res.writeStatus("404 Not Found").writeHeader("content-type", "text/plain; charset=utf-8").end("the client bundle was not built: run npm run build\n");
        return;
      }
      res.writeStatus("200 OK").writeHeader("content-type", "text/javascript; charset=utf-8").writeHeader("cache-control", "no-cache").end(bundle);
    });
  });
  // Probes answer HEAD as they answer GET (the strict app drops the body of every HEAD answer).
  for (const register of [app.get.bind(app), app.head.bind(app)]) {
    register("/healthz", (res) => sendJson(res, { aborted: false }, 200, { ok: true }));
    register("/readyz", (res) => {
      const ready = options.isReady();
      sendJson(res, { aborted: false }, ready ? 200 : 503, { ready });
    });
  }
  app.get("/metrics", (res) => {
    res.cork(() => {
      res.writeStatus("200 OK").writeHeader("content-type", "text/plain; version=0.0.4").end(options.metrics());
    });
  });

  const cors = (req: HttpRequest) => options.cors?.headers(req.getHeader("origin") || undefined) ?? {};

  const { logger } = options;
  app.post("/v1/sessions", (res, req) => safely(res, logger, async () => {
    const state = guard(res);
    const headers = cors(req);
    const draining = engine.draining;
    if (draining) {
      sendError(res, state, 503, { code: ErrorCode.ServerDraining, message: "the server is shutting down", retryable: true, retryAfterMs: draining.retryAfterMs }, headers);
      return;
    }
    const created = await engine.createSession();
    if (!created) {
      sendError(res, state, 503, { code: ErrorCode.Overloaded, message: "the server is at its session limit or memory budget", retryable: true, retryAfterMs: 5000 }, headers);
      return;
    }
    const base = `${options.basePath ?? ""}/v1/sessions/${created.sessionId}`;
    sendJson(res, state, 201, { ...created, urls: { ws: `${base}/ws`, events: `${base}/events`, messages: `${base}/messages`, snapshot: base } }, headers);
  }));
  app.any("/v1/sessions", notAllowed);

  app.get("/v1/sessions/:id", (res, req) => safely(res, logger, async () => {
    const info = readRequest(res, req);
    const state = guard(res);
    const headers = cors(req);
    const session = await authorizeRequest(engine, req.getParameter(0) ?? "", extractToken(info), res, state, headers);
    if (!session) return;
    const snapshot = await engine.snapshot(session).catch(() => null);
    if (snapshot) sendJson(res, state, 200, snapshot, headers);
    else sendError(res, state, 503, { code: ErrorCode.OwnerUnavailable, message: "the session's owner did not answer", retryable: true, retryAfterMs: 1000 }, headers);
  }));
  app.del("/v1/sessions/:id", (res, req) => safely(res, logger, async () => {
    const info = readRequest(res, req);
    const state = guard(res);
    const id = req.getParameter(0) ?? "";
    const headers = cors(req);
    if (!(await authorizeRequest(engine, id, extractToken(info), res, state, headers))) return;
    await engine.deleteSession(id);
    sendJson(res, state, 204, null, headers);
  }));
}

/** Anything no route matched: a JSON 404 rather than uWS's bare connection close. Register last. */
export function registerNotFound(app: TemplatedApp): void {
  app.any("/*", (res) => {
    sendError(res, { aborted: false }, 404, { code: ErrorCode.NotFound, message: "no such route" });
  });
}
