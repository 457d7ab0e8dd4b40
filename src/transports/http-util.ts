// uWS HTTP helpers: abort-safe body reading, corked JSON replies, header and query access.
import { ERRORS, type ErrorBody, ErrorCode } from "@agentwire/protocol";
import type { HttpRequest, HttpResponse } from "./uws.js";

export interface RequestInfo {
  method: string;
  url: string;
  query: string;
  headers: Record<string, string>;
  ip: string;
}

/** Copies what a handler needs from the request: uWS invalidates `req` after the first await or return. */
export function readRequest(res: HttpResponse, req: HttpRequest): RequestInfo {
  const headers: Record<string, string> = {};
  req.forEach((k, v) => {
    headers[k] = v;
  });
  return {
    method: req.getMethod().toUpperCase(),
    url: req.getUrl(),
    query: req.getQuery() ?? "",
    headers,
    ip: Buffer.from(res.getRemoteAddressAsText()).toString(),
  };
}

/** Tracks whether the client went away; every async handler must create it before its first await. */
export function guard(res: HttpResponse, onAbort?: () => void): { aborted: boolean } {
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
    onAbort?.();
  });
  return state;
}

export type BodyResult = { ok: true; body: Buffer } | { ok: false; tooLarge: true };

/** Reads the request body up to `maxBytes`; larger bodies resolve `tooLarge` without buffering them. */
export function readBody(res: HttpResponse, maxBytes: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        done = true;
        resolve({ ok: false, tooLarge: true });
        return;
      }
      // uWS reuses the chunk's memory after this callback returns: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) {
        done = true;
        resolve({ ok: true, body: Buffer.concat(chunks) });
      }
    });
  });
}

const STATUS_TEXT: Record<number, string> = {
  200: "200 OK",
  201: "201 Created",
  202: "202 Accepted",
  204: "204 No Content",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  403: "403 Forbidden",
  404: "404 Not Found",
  405: "405 Method Not Allowed",
  409: "409 Conflict",
  413: "413 Payload Too Large",
  415: "415 Unsupported Media Type",
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
  503: "503 Service Unavailable",
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Status`;
}

/**
 * Writes a complete JSON response inside cork. No-op when the client already went away. A body that
 * cannot be serialized (a bug: client data is bounded at parse time) is answered 500, never thrown.
 */
export function sendJson(res: HttpResponse, state: { aborted: boolean }, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (state.aborted) return;
  let text: string | undefined;
  try {
    text = status === 204 ? undefined : JSON.stringify(body);
  } catch {
    status = 500;
    text = JSON.stringify({ error: { code: ErrorCode.Internal, message: "the answer could not be serialized", retryable: false } });
  }
  res.cork(() => {
    res.writeStatus(statusLine(status));
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.writeHeader("content-type", "application/json; charset=utf-8");
    res.writeHeader("cache-control", "no-store");
    res.end(text);
  });
}

/**
 * Runs an async route handler so that nothing it throws reaches the process: the failure is
 * logged and answered 500 `internal_error` when the response is still open.
 */
export function safely(res: HttpResponse, logger: { error(obj: object, msg: string): void }, handler: () => Promise<void>): void {
  handler().catch((err: unknown) => {
    logger.error({ err }, "http handler failed");
    try {
      sendError(res, { aborted: false }, 500, { code: ErrorCode.Internal, message: "the server failed to answer this request", retryable: true, retryAfterMs: 1000 });
    } catch {
      // Already answered or aborted: nothing left to tell the client.
    }
  });
}

export function sendError(res: HttpResponse, state: { aborted: boolean }, status: number, error: ErrorBody, headers: Record<string, string> = {}): void {
  const extra = error.retryAfterMs !== undefined ? { "retry-after": String(Math.ceil(error.retryAfterMs / 1000)), ...headers } : headers;
  sendJson(res, state, status, { error }, extra);
}

export function queryParam(query: string, name: string): string | undefined {
  const value = new URLSearchParams(query).get(name);
  return value ?? undefined;
}

/** The credential of an `Authorization: Bearer <credential>` header, or undefined. */
export function bearerOf(authorization: string | undefined): string | undefined {
  return authorization !== undefined && /^bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined;
}

/** The session token from `Authorization: Bearer`, `?token=`, or a `bearer.<token>` WebSocket subprotocol. */
export function extractToken(info: RequestInfo): string | undefined {
  const bearer = bearerOf(info.headers.authorization);
  if (bearer !== undefined) return bearer;
  const fromQuery = queryParam(info.query, "token");
  if (fromQuery) return fromQuery;
  const protocols = info.headers["sec-websocket-protocol"];
  if (protocols) {
    for (const p of protocols.split(",")) {
      const trimmed = p.trim();
      if (trimmed.startsWith("bearer.")) return trimmed.slice(7);
    }
  }
  return undefined;
}

/** Replaces `token=...` in a URL or query so logs never carry credentials. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, "$1[redacted]");
}

/** The HTTP answer to a failed session lookup: no such session, a wrong token, or a cluster that could not be asked. */
export function authFailure(code: ErrorCode): { status: number; error: ErrorBody } {
  const { status, retryable } = ERRORS[code];
  if (code === "session_not_found") return { status, error: { code, message: "no such session", retryable } };
  if (code === "owner_unavailable") return { status, error: { code, message: "the session store cannot be reached; retry", retryable, retryAfterMs: 1000 } };
  return { status, error: { code, message: "wrong token for this session", retryable } };
}
