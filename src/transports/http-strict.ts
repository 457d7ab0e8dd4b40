// Strict edges for every route of the uWS app: message framing, header limits, the fd guard, WebSocket handshakes.
import type { RecognizedString, WebSocketBehavior } from "uWebSockets.js";
import { ErrorCode } from "@agentwire/protocol";
import type { Logger } from "../engine/index.js";
import { processFdGuard, type FdGuard } from "./fd-guard.js";
import type { ErrorBody } from "@agentwire/protocol";
import type { HttpRequest, HttpResponse, TemplatedApp } from "./uws.js";

/**
 * uWS parses requests in C++ and refuses some malformed ones itself (it closes the link without an
 * answer); what it lets through reaches JS, and every handler registered through `strictApp` sees
 * it here first. protocol/README.md, "What a client sees at the edges", lists both.
 */

export interface StrictOptions {
  /** Descriptors kept free below the open-files limit; 0 turns the guard off. */
  fdHeadroom: number;
  /** Route patterns the fd guard lets through: a probe must still learn that the process lives. */
  unguarded?: readonly string[];
  /** Overrides the guard built from `fdHeadroom` (tests). */
  fdGuard?: FdGuard | null;
  logger?: Logger;
}

/** The route a WebSocket client upgrades on. */
export const WEBSOCKET_ROUTE = "/v1/sessions/:id/ws";

/**
 * uWS accepts a request head of any size when it arrives in one read, but closes the link without
 * an answer once a head split across reads passes 4 KiB. One limit for both: 431 when JS sees it.
 */
export const MAX_HEAD_BYTES = 4096;

/**
 * While uWS parses a read it gathers responses in a 16 KiB cork buffer, and it takes the next request
 * of that read before sending anything, which clears a refusal's Connection: close: whatever was
 * smuggled behind it would be answered, on a link kept open. A body that does not fit the buffer
 * makes uWS write at once and close the link before it parses on. JSON allows the trailing spaces.
 */
const UNCORKED_BODY_BYTES = 16 * 1024 + 1;

const STATUS_LINE: Record<number, string> = {
  400: "400 Bad Request",
  426: "426 Upgrade Required",
  431: "431 Request Header Fields Too Large",
  503: "503 Service Unavailable",
};

const UPGRADE_HEADERS = { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13" };

type Handler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;
type Method = "get" | "post" | "options" | "del" | "patch" | "put" | "head" | "connect" | "trace" | "any";
const METHODS: readonly Method[] = ["get", "post", "options", "del", "patch", "put", "head", "connect", "trace", "any"];

/** How a refusal leaves the link: kept, closed after the answer, or closed before anything behind it is read. */
type After = "keep" | "close" | "cut";

interface Refusal {
  status: number;
  error: ErrorBody;
  after: After;
  headers?: Record<string, string>;
}

const invalid = (status: number, field: string, message: string, after: After, headers?: Record<string, string>): Refusal => ({
  status,
  error: { code: ErrorCode.InvalidMessage, message, field, retryable: false },
  after,
  headers,
});

/** The request's framing and head size: a refusal, or null when the handler may run. */
export function checkHead(req: HttpRequest): Refusal | null {
  // An object, not locals: the callback below writes it, and TypeScript does not follow writes there.
  const head = { bytes: req.getMethod().length + req.getUrl().length + (req.getQuery() ?? "").length + 15, length: "", lengths: 0, conflict: false, coding: "", codings: 0 };
  req.forEach((key, value) => {
    head.bytes += key.length + value.length + 4;
    if (key === "content-length") {
      if (head.lengths++ > 0 && value !== head.length) head.conflict = true;
      head.length = value;
    } else if (key === "transfer-encoding") {
      head.codings++;
      head.coding = value;
    }
  });
  // uWS reads the body by the first Content-Length, and closes on both headers only when both are
  // non-empty: any other mix may frame the body differently than a proxy in front did.
  if (head.lengths > 0 && head.codings > 0) return invalid(400, "transfer-encoding", "Content-Length together with Transfer-Encoding", "cut");
  if (head.conflict || (head.lengths > 0 && !/^\d+$/.test(head.length))) return invalid(400, "content-length", "conflicting or malformed Content-Length", "cut");
  // uWS reads any Transfer-Encoding as chunked; RFC 9112 6.3: chunked must be the final coding.
  if (head.codings > 0 && head.coding.split(",").pop()?.trim().toLowerCase() !== "chunked") {
    return invalid(400, "transfer-encoding", "chunked must be the final transfer coding", "cut");
  }
  if (head.bytes > MAX_HEAD_BYTES) return invalid(431, "headers", `request head above ${MAX_HEAD_BYTES} bytes`, "close");
  return null;
}

const hasToken = (header: string, token: string) => header.split(",").some((t) => t.trim().toLowerCase() === token);

/** The handshake checks uWS leaves out (it upgrades any GET with a 24-character key). */
export function checkHandshake(req: HttpRequest): Refusal | null {
  if (!hasToken(req.getHeader("upgrade"), "websocket")) return invalid(426, "upgrade", "this route takes WebSocket upgrades only", "keep", UPGRADE_HEADERS);
  if (!hasToken(req.getHeader("connection"), "upgrade")) return invalid(400, "connection", "Connection must include Upgrade", "keep");
  // RFC 6455 4.4: an unsupported version gets 426 and the versions the server speaks.
  if (req.getHeader("sec-websocket-version") !== "13") return invalid(426, "sec-websocket-version", "only WebSocket version 13 is supported", "keep", UPGRADE_HEADERS);
  if (!/^[A-Za-z0-9+/]{22}==$/.test(req.getHeader("sec-websocket-key"))) return invalid(400, "sec-websocket-key", "Sec-WebSocket-Key must be 16 bytes in base64", "keep");
  return null;
}

/** Writes a refusal. Called inside the route handler, so always while uWS parses (and corks). */
function refuse(res: HttpResponse, refusal: Refusal): void {
  const json = JSON.stringify({ error: refusal.error });
  const body = refusal.after === "cut" ? json.padEnd(UNCORKED_BODY_BYTES, " ") : json;
  const retryAfterMs = refusal.error.retryAfterMs;
  res.cork(() => {
    res.writeStatus(STATUS_LINE[refusal.status] ?? `${refusal.status} Status`);
    for (const [k, v] of Object.entries(refusal.headers ?? {})) res.writeHeader(k, v);
    if (retryAfterMs !== undefined) res.writeHeader("retry-after", String(Math.ceil(retryAfterMs / 1000)));
    res.writeHeader("content-type", "application/json; charset=utf-8");
    res.writeHeader("cache-control", "no-store");
    res.end(body, refusal.after !== "keep");
  });
}

/**
 * HEAD gets the answer GET would get, without its body (RFC 9110 9.3.2): uWS would send the body of
 * whatever route answers, and a keep-alive client would read it as the start of the next answer.
 */
function withoutBody(res: HttpResponse): void {
  const target = res as unknown as { end(body?: RecognizedString): HttpResponse };
  // No arguments: with a length or a close flag, this uWS build leaves the response open and aborts
  // the process once the handler returns. (No route asks a HEAD answer to close the link.)
  target.end = () => res.endWithoutBody();
}

const OVERLOADED: Refusal = {
  status: 503,
  error: { code: ErrorCode.Overloaded, message: "the server is near its open-files limit", retryable: true, retryAfterMs: 1000 },
  after: "close",
};

/**
 * Routes every handler registered on `app` through the edge checks first; returns `app` itself.
 * WebSocket routes get the handshake checks in `upgrade`, before the route's own.
 */
export function strictApp(app: TemplatedApp, options: StrictOptions): TemplatedApp {
  const guard = options.fdGuard !== undefined ? options.fdGuard : processFdGuard(options.fdHeadroom);
  const unguarded = new Set(options.unguarded ?? ["/healthz", "/readyz"]);
  const logger = options.logger;
  let refusing = false;
  if (guard) logger?.info({ limit: guard.limit, threshold: guard.threshold }, "file-descriptor guard on");

  /** True when the request may go on; otherwise it has been answered. */
  const admit = (res: HttpResponse, req: HttpRequest, guarded: boolean): boolean => {
    const refusal = checkHead(req);
    if (refusal) {
      logger?.debug({ status: refusal.status, field: refusal.error.field, url: req.getUrl() }, "request refused at the edge");
      refuse(res, refusal);
      return false;
    }
    if (!guarded || !guard) return true;
    const overloaded = guard.overloaded();
    if (overloaded !== refusing) {
      refusing = overloaded;
      // Once per change, not per request: under pressure this would flood the log.
      if (overloaded) logger?.warn({ open: guard.openFds, limit: guard.limit }, "near the open-files limit: refusing new requests with 503");
      else logger?.info({ open: guard.openFds, limit: guard.limit }, "below the open-files threshold again: taking requests");
    }
    if (overloaded) refuse(res, OVERLOADED);
    return !overloaded;
  };

  const routes = app as unknown as Record<Method, (pattern: string, handler: Handler) => TemplatedApp>;
  for (const method of METHODS) {
    const register = routes[method].bind(app);
    routes[method] = (pattern, handler) => {
      const guarded = !unguarded.has(pattern);
      return register(pattern, (res, req) => {
        if (!admit(res, req, guarded)) return undefined;
        if (req.getMethod() === "head") withoutBody(res);
        return handler(res, req);
      });
    };
  }

  const registerWs = app.ws.bind(app);
  app.ws = <UserData>(pattern: string, behavior: WebSocketBehavior<UserData>) => {
    const upgrade: NonNullable<WebSocketBehavior<UserData>["upgrade"]> =
      behavior.upgrade ??
      ((res, req, context) =>
        res.upgrade({} as UserData, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), context));
    return registerWs<UserData>(pattern, {
      ...behavior,
      upgrade(res, req, context) {
        if (!admit(res, req, true)) return;
        const refusal = checkHandshake(req);
        if (refusal) {
          logger?.debug({ status: refusal.status, field: refusal.error.field }, "upgrade refused");
          refuse(res, refusal);
          return;
        }
        return upgrade(res, req, context);
      },
    });
  };
  return app;
}

/**
 * A GET on the WebSocket route that uWS did not take as a handshake (no 24-character key): what a
 * proxy that strips Upgrade sends. 426 names the upgrade; a handshake with a bad key is a 400.
 * Register on the strict app, after the WebSocket route and before the catch-all 404.
 */
export function registerUpgradeRequired(app: TemplatedApp, pattern = WEBSOCKET_ROUTE): void {
  app.get(pattern, (res, req) => {
    if (hasToken(req.getHeader("upgrade"), "websocket")) {
      refuse(res, invalid(400, "sec-websocket-key", "Sec-WebSocket-Key must be 16 bytes in base64", "keep"));
    } else {
      refuse(res, invalid(426, "upgrade", "this route takes WebSocket upgrades only", "keep", UPGRADE_HEADERS));
    }
  });
}
