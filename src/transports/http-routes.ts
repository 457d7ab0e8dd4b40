// Plain HTTP routes on the uWS app: session create/delete/snapshot, health and readiness, metrics.
import { timingSafeEqual } from "node:crypto";
import { ERRORS, ErrorCode } from "@agentwire/protocol";
import type { Authenticator } from "../auth/index.js";
import type { Engine, Logger } from "../engine/index.js";
import type { ClientAddress } from "./client-address.js";
import { type CorsPolicy, ORIGIN_REFUSAL } from "./cors.js";
import { readClientBundle } from "./client-bundle.js";
import { DEMO_PAGE } from "./demo-page.js";
import { authorizeRequest } from "./http-messages.js";
import { bearerOf, guard, readBody, readRequest, safely, sendError, sendJson } from "./http-util.js";
import type { HttpRequest, HttpResponse, TemplatedApp } from "./uws.js";
import type { MetricsEndpoint } from "./metrics.js";

export interface HttpRouteOptions {
  /** Readiness beyond "the process runs": e.g. the broker's link. */
  isReady(): boolean;
  /** What /metrics serves; null: /metrics is not served on this listener. */
  metrics: MetricsEndpoint | null;
  /** Bearer token /metrics requires; absent: none. */
  metricsToken?: string;
  /** Serve the demo chat page at `/` and the client bundle it loads. */
  demoPage: boolean;
  /** Who may create sessions (API keys, client tokens, open mode). */
  authenticator: Authenticator;
  /** The address a request counts as (open mode's identity). */
  clientAddress: ClientAddress;
  /** Largest create body accepted. */
  maxPayloadBytes: number;
  /** The public base path clients should use for follow-up URLs, e.g. "" or "/agentwire". */
  basePath?: string;
  /** Browser origins: which may use the routes (403 otherwise), and CORS for those. */
  cors: CorsPolicy;
  /** Where a handler's unexpected failure is reported (it is answered 500, never thrown). */
  logger: Logger;
}

const notAllowed = (res: HttpResponse) => {
  const state = { aborted: false };
  sendError(res, state, 405, { code: ErrorCode.MethodNotAllowed, message: "method not allowed on this route" });
};

export function registerHttpRoutes(app: TemplatedApp, engine: Engine, options: HttpRouteOptions): void {
  if (options.demoPage) registerDemoPage(app);
  // Probes answer HEAD as they answer GET (the strict app drops the body of every HEAD answer).
  for (const register of [app.get.bind(app), app.head.bind(app)]) {
    register("/healthz", (res) => sendJson(res, { aborted: false }, 200, { ok: true }));
    register("/readyz", (res) => {
      const ready = options.isReady();
      sendJson(res, { aborted: false }, ready ? 200 : 503, { ready });
    });
  }
  if (options.metrics) registerMetrics(app, options.metrics, options.metricsToken);

  const { cors, logger, authenticator } = options;
  const corsHeaders = (req: HttpRequest) => cors.headers(req.getHeader("origin") || undefined);

  app.post("/v1/sessions", (res, req) => safely(res, logger, async () => {
    const info = readRequest(res, req);
    const state = guard(res);
    const headers = corsHeaders(req);
    const declaredTooLarge = Number(info.headers["content-length"] ?? 0) > options.maxPayloadBytes;
    // Read at once: uWS hands body chunks only to a reader attached before the handler first yields.
    const bodyRead = declaredTooLarge ? null : readBody(res, options.maxPayloadBytes);
    if (!cors.allows(info.headers.origin, info.headers.host)) {
      sendError(res, state, ORIGIN_REFUSAL.status, ORIGIN_REFUSAL.error, headers);
      return;
    }
    const draining = engine.draining;
    if (draining) {
      sendError(res, state, 503, { code: ErrorCode.ServerDraining, message: "the server is shutting down", retryable: true, retryAfterMs: draining.retryAfterMs }, headers);
      return;
    }
    const read = bodyRead ? await bodyRead : ({ ok: false, tooLarge: true } as const);
    if (!read.ok) {
      sendError(res, state, 413, { code: ErrorCode.PayloadTooLarge, message: `a create body is limited to ${options.maxPayloadBytes} bytes`, retryable: false }, headers);
      return;
    }
    let body: unknown;
    if (read.body.length > 0) {
      const parsed = parseJsonBody(read.body);
      if (!parsed.ok) {
        sendError(res, state, 400, { code: ErrorCode.InvalidJson, message: "the create body is not JSON", retryable: false }, headers);
        return;
      }
      body = parsed.value;
    }
    // The header only, never ?token=: a credential in the query would land in access logs.
    const auth = await authenticator.authenticate(bearerOf(info.headers.authorization), body, options.clientAddress.of(info.ip, info.headers["x-forwarded-for"]));
    if (!auth.ok) {
      sendError(res, state, auth.status, auth.error, headers);
      return;
    }
    const created = await engine.tryCreateSession(auth.principal);
    if (!created.ok) {
      sendError(res, state, ERRORS[created.error.code].status, created.error, headers);
      return;
    }
    const base = `${options.basePath ?? ""}/v1/sessions/${created.sessionId}`;
    const answer = { sessionId: created.sessionId, token: created.token, urls: { ws: `${base}/ws`, events: `${base}/events`, messages: `${base}/messages`, snapshot: base } };
    sendJson(res, state, 201, answer, headers);
  }));
  app.any("/v1/sessions", notAllowed);

  app.get("/v1/sessions/:id", (res, req) => safely(res, logger, async () => {
    const info = readRequest(res, req);
    const state = guard(res);
    const headers = corsHeaders(req);
    const session = await authorizeRequest(engine, req.getParameter(0) ?? "", info, cors, res, state, headers);
    if (!session) return;
    const snapshot = await engine.snapshot(session).catch(() => null);
    if (snapshot) sendJson(res, state, 200, snapshot, headers);
    else sendError(res, state, 503, { code: ErrorCode.OwnerUnavailable, message: "the session's owner did not answer", retryable: true, retryAfterMs: 1000 }, headers);
  }));
  app.del("/v1/sessions/:id", (res, req) => safely(res, logger, async () => {
    const info = readRequest(res, req);
    const state = guard(res);
    const id = req.getParameter(0) ?? "";
    const headers = corsHeaders(req);
    if (!(await authorizeRequest(engine, id, info, cors, res, state, headers))) return;
    await engine.deleteSession(id);
    sendJson(res, state, 204, null, headers);
  }));
}

function parseJsonBody(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString("utf8")) };
  } catch {
    return { ok: false };
  }
}

function registerDemoPage(app: TemplatedApp): void {
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
}

/** `/metrics`, behind `Authorization: Bearer <token>` when a token is set (compared in constant time). */
export function registerMetrics(app: TemplatedApp, metrics: MetricsEndpoint, token: string | undefined): void {
  const expected = token === undefined ? null : Buffer.from(token);
  app.get("/metrics", (res, req) => {
    if (expected) {
      const given = Buffer.from(bearerOf(req.getHeader("authorization")) ?? "");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        sendError(res, { aborted: false }, 401, { code: ErrorCode.Unauthorized, message: "metrics need Authorization: Bearer <AGENTWIRE_METRICS_TOKEN>", retryable: false }, { "www-authenticate": "Bearer" });
        return;
      }
    }
    // Collected asynchronously (the event-loop lag is measured across a tick): the client may leave meanwhile.
    const state = guard(res);
    metrics.text().then(
      (text) => {
        if (state.aborted) return;
        res.cork(() => {
          res.writeStatus("200 OK").writeHeader("content-type", metrics.contentType).writeHeader("cache-control", "no-store").end(text);
        });
      },
      () => sendError(res, state, 500, { code: ErrorCode.Internal, message: "the metrics could not be collected", retryable: true, retryAfterMs: 1000 }),
    );
  });
}

/** Anything no route matched: a JSON 404 rather than uWS's bare connection close. Register last. */
export function registerNotFound(app: TemplatedApp): void {
  app.any("/*", (res) => {
    sendError(res, { aborted: false }, 404, { code: ErrorCode.NotFound, message: "no such route" });
  });
}
