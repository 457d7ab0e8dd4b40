// The stream-less half of the HTTP fallback: client messages as POSTs, and turns polled by id.
import { ERRORS, ErrorCode, type TurnView, parseClientFrame } from "@agentwire/protocol";
import type { Engine, Session } from "../engine/index.js";
import { type CorsPolicy, ORIGIN_REFUSAL } from "./cors.js";
import { type RequestInfo, authFailure, extractToken, guard, readBody, readRequest, sendError, sendJson } from "./http-util.js";
import type { HttpRequest, HttpResponse } from "./uws.js";

/**
 * Finds the session wherever it lives (this node or another) and checks its token, or answers
 * 401/403/404 itself. Null also when the client went away meanwhile: nothing is left to answer.
 */
export async function authorizeRequest(
  engine: Engine,
  sessionId: string,
  info: RequestInfo,
  cors: CorsPolicy,
  res: HttpResponse,
  state: { aborted: boolean },
  headers: Record<string, string>,
): Promise<Session | null> {
  if (!cors.allows(info.headers.origin, info.headers.host)) {
    sendError(res, state, ORIGIN_REFUSAL.status, ORIGIN_REFUSAL.error, headers);
    return null;
  }
  const token = extractToken(info);
  if (!token) {
    sendError(res, state, 401, { code: ErrorCode.Unauthorized, message: "a session token is required", retryable: false }, headers);
    return null;
  }
  const auth = await engine.authorizeAny(sessionId, token);
  if (state.aborted) return null;
  if (auth.ok) return auth.session;
  const { status, error } = authFailure(auth.code);
  sendError(res, state, status, error, headers);
  return null;
}

/** `application/json`, or any `+json` type, with or without parameters. */
const JSON_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/**
 * POST /v1/sessions/:id/messages: one client message, checked by the same parser as a WebSocket frame.
 * Answers 200 with the reply when the message has one (`ping` -> `pong`), else 202 `{ ok, turn? }`
 * with `Location` naming the turn to poll. Refusals carry the engine's status and stable code.
 */
export async function postMessage(res: HttpResponse, req: HttpRequest, engine: Engine, maxPayloadBytes: number, cors: CorsPolicy): Promise<void> {
  const info = readRequest(res, req);
  const sessionId = req.getParameter(0) ?? "";
  const state = guard(res);
  const headers = cors.headers(info.headers.origin);
  // uWS hands body chunks only to a reader attached before the handler first yields: start reading
  // now, ahead of the (possibly cross-node) session lookup.
  const declaredTooLarge = Number(info.headers["content-length"] ?? 0) > maxPayloadBytes;
  const bodyRead = declaredTooLarge ? null : readBody(res, maxPayloadBytes);
  const session = await authorizeRequest(engine, sessionId, info, cors, res, state, headers);
  if (!session) return;
  if (!JSON_TYPE.test(info.headers["content-type"] ?? "")) {
    engine.telemetry.clientError(ErrorCode.UnsupportedMediaType);
    sendError(res, state, 415, { code: ErrorCode.UnsupportedMediaType, message: "send the message as application/json", retryable: false }, headers);
    return;
  }
  const tooLarge = () => {
    engine.telemetry.clientError(ErrorCode.PayloadTooLarge);
    sendError(res, state, 413, { code: ErrorCode.PayloadTooLarge, message: `messages are limited to ${maxPayloadBytes} bytes`, retryable: false }, headers);
  };
  // A declared length over the limit is refused before a byte of the body is read.
  if (!bodyRead) {
    tooLarge();
    return;
  }
  const body = await bodyRead;
  if (state.aborted) return;
  if (!body.ok) {
    tooLarge();
    return;
  }
  const parsed = parseClientFrame(body.body.toString("utf8"));
  if (!parsed.ok) {
    const { code, message, field } = parsed.error;
    engine.telemetry.clientError(code);
    sendError(res, state, 400, { code, message, field, retryable: false }, headers);
    return;
  }
  // `Idempotency-Key` is the message id for clients that retry requests whole (the same limits as `id`).
  const key = info.headers["idempotency-key"];
  if (key !== undefined && parsed.message.type !== "ping" && parsed.message.type !== "resume") {
    if (key.length < 1 || key.length > 128 || (parsed.message.id !== undefined && parsed.message.id !== key)) {
      const message = key.length < 1 || key.length > 128 ? "Idempotency-Key must be 1 to 128 characters" : "Idempotency-Key and the message id differ";
      engine.telemetry.clientError(ErrorCode.InvalidMessage);
      sendError(res, state, 400, { code: ErrorCode.InvalidMessage, message, field: "idempotency-key", retryable: false }, headers);
      return;
    }
    parsed.message.id = key;
  }
  // A session owned by another node answers through it, asynchronously.
  const outcome = await engine.submit(session, parsed.message);
  if (!outcome.ok) {
    sendError(res, state, ERRORS[outcome.error.code].status, outcome.error, headers);
    return;
  }
  if (outcome.reply) {
    sendJson(res, state, 200, outcome.reply, headers);
    return;
  }
  const id = parsed.message.id;
  // Relative to this URL, so it stays right behind a proxy that mounts us under a prefix.
  const location: Record<string, string> = outcome.turn ? { location: `turns/${outcome.turn}` } : {};
  sendJson(res, state, 202, { ok: true, ...(outcome.turn ? { turn: outcome.turn } : {}), ...(id ? { id } : {}) }, { ...headers, ...location });
}

/** GET /v1/sessions/:id/turns/:turnId: the polling path for clients that hold no stream. */
export async function pollTurn(res: HttpResponse, req: HttpRequest, engine: Engine, cors: CorsPolicy): Promise<void> {
  const info = readRequest(res, req);
  const sessionId = req.getParameter(0) ?? "";
  const turnId = req.getParameter(1) ?? "";
  const state = guard(res);
  const headers = cors.headers(info.headers.origin);
  const session = await authorizeRequest(engine, sessionId, info, cors, res, state, headers);
  if (!session) return;
  const record = await engine.turnRecord(session, turnId).catch(() => undefined);
  if (state.aborted) return;
  if (!record) {
    sendError(res, state, 404, { code: ErrorCode.TurnNotFound, message: `no turn "${turnId.slice(0, 64)}" in this session`, retryable: false }, headers);
    return;
  }
  const ended = record.status !== "running" && record.status !== "queued";
  const view: TurnView = {
    turn: record.id,
    status: record.status,
    reason: record.reason ?? null,
    input: record.input,
    text: record.text,
    // The engine settles token counts when the turn ends; a running turn has none to report yet.
    usage: ended ? { inputTokens: record.inputTokens, outputTokens: record.outputTokens } : null,
    startedAt: record.startedAt,
    endedAt: record.endedAt ?? null,
    lastSeq: session.log.lastSeq,
  };
  if (record.status === "queued" && record.position !== undefined) view.position = record.position;
  sendJson(res, state, 200, view, headers);
}
