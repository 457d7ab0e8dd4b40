// The WebSocket route: upgrade with auth and limits, then frames -> engine and engine -> frames.
import { CloseCode, ErrorCode, parseClientFrame } from "../../protocol/index.js";
import type { Attachment, AuthResult, Engine, KeyedRateLimiter, Logger, Sink } from "../engine/index.js";
import { authFailure, extractToken, queryParam, readRequest, sendError } from "./http-util.js";
import type { TemplatedApp, WebSocket } from "./uws.js";
import type { ClientAddress } from "./client-address.js";

export interface WebSocketRouteOptions {
  /** Largest frame answered with a typed error; bigger frames up to 4x this close the link with 1009. */
  maxPayloadBytes: number;
  /** Seconds without traffic before uWS closes the link; pings go out automatically before that. */
  idleTimeoutS: number;
  maxConnections: number;
  connectLimiter: KeyedRateLimiter;
  /** Who a request counts as for the per-IP limit (the peer, or the client a trusted proxy names). */
  clientAddress: ClientAddress;
  logger: Logger;
}

/** Per-connection state lives under one key: uWS merges user data onto the socket object itself. */
interface UserData {
  conn: Connection;
}

export interface ConnectionStats {
  websockets: number;
  sseStreams: number;
}

const SUBPROTOCOL = "agentwire.v1";

export function registerWebSocketRoute(app: TemplatedApp, engine: Engine, options: WebSocketRouteOptions, stats: ConnectionStats): void {
  const { logger } = options;
  app.ws<UserData>("/v1/sessions/:id/ws", {
    // uWS closes the link on anything above maxPayloadLength; we answer frames between the configured
    // limit and this hard ceiling with a typed error instead, and keep the connection.
    maxPayloadLength: options.maxPayloadBytes * 4,
    idleTimeout: options.idleTimeoutS,
    sendPingsAutomatically: true,
    // The outbox enforces its own cap and closes with SlowConsumer; uWS must never drop frames silently.
    maxBackpressure: 64 * 1024 * 1024,
    closeOnBackpressureLimit: 0,

    upgrade(res, req, context) {
      const info = readRequest(res, req);
      const sessionId = req.getParameter(0) ?? "";
      const key = req.getHeader("sec-websocket-key");
      const extensions = req.getHeader("sec-websocket-extensions");
      const state = { aborted: false };
      const waitMs = options.connectLimiter.take(options.clientAddress.of(info.ip, info.headers["x-forwarded-for"]));
      if (waitMs > 0) {
        sendError(res, state, 429, { code: ErrorCode.RateLimited, message: "too many connection attempts", retryable: true, retryAfterMs: waitMs });
        return;
      }
      if (stats.websockets >= options.maxConnections) {
        sendError(res, state, 503, { code: ErrorCode.Overloaded, message: "connection limit reached", retryable: true, retryAfterMs: 1000 });
        return;
      }
      const token = extractToken(info);
      if (!token) {
        sendError(res, state, 401, { code: ErrorCode.Unauthorized, message: "a session token is required" });
        return;
      }
      const rawAfter = queryParam(info.query, "afterSeq");
      let afterSeq: number | undefined;
      if (rawAfter !== undefined) {
        afterSeq = Number(rawAfter);
        if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
          sendError(res, state, 400, { code: ErrorCode.InvalidMessage, message: "afterSeq must be a non-negative integer", field: "afterSeq" });
          return;
        }
      }
      const offered = (info.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim()).filter(Boolean);
      const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : (offered.find((p) => !p.startsWith("bearer.")) ?? "");
      const finish = (auth: AuthResult) => {
        if (!auth.ok) {
          const { status, error } = authFailure(auth.code);
          sendError(res, state, status, error);
          return;
        }
        const conn = new Connection(sessionId, afterSeq);
        res.cork(() => res.upgrade<UserData>({ conn }, key, protocol, extensions, context));
      };
      // Sessions held here answer at once; others are looked up in the broker first.
      if (engine.get(sessionId)) {
        finish(engine.authorize(sessionId, token));
        return;
      }
      res.onAborted(() => {
        state.aborted = true;
      });
      void engine.authorizeAny(sessionId, token).then((auth) => {
        if (!state.aborted) finish(auth);
      });
    },

    open(ws) {
      const conn = ws.getUserData().conn;
      const session = engine.get(conn.sessionId);
      if (!session || session.isEnded) {
        ws.end(CloseCode.SessionNotFound, "session_not_found");
        return;
      }
      stats.websockets++;
      // The session's own id string from now on: the one parsed from the URL can go.
      conn.open(ws, session.id);
      conn.attachment = engine.attach(session, conn, conn.afterSeq);
      logger.debug({ sessionId: conn.sessionId, afterSeq: conn.afterSeq }, "websocket attached");
    },

    message(ws, data, isBinary) {
      const conn = ws.getUserData().conn;
      const attachment = conn.attachment;
      if (!attachment) return;
      if (isBinary) {
        attachment.rejectFrame({ code: ErrorCode.BinaryNotSupported, message: "send JSON text frames" });
        return;
      }
      if (data.byteLength > options.maxPayloadBytes) {
        attachment.rejectFrame({ code: ErrorCode.PayloadTooLarge, message: `frames are limited to ${options.maxPayloadBytes} bytes` });
        return;
      }
      const parsed = parseClientFrame(Buffer.from(data).toString("utf8"));
      if (parsed.ok) attachment.receive(parsed.message);
      else attachment.rejectFrame(parsed.error);
    },

    drain(ws) {
      ws.getUserData().conn.attachment?.drained();
    },

    close(ws, code) {
      const conn = ws.getUserData().conn;
      conn.closed = true;
      if (conn.attachment) {
        stats.websockets--;
        conn.attachment.detach();
        conn.attachment = null;
      }
      logger.debug({ sessionId: conn.sessionId, code }, "websocket closed");
    },
  });
}

/** A batch this big goes to the socket at once (uWS's cork buffer holds 16 KB): one syscall each. */
const BATCH_FLUSH_BYTES = 8 * 1024;

/** What an idle connection's batch points at, so it holds no array. Frozen: a push is a bug. */
const NO_FRAMES: string[] = Object.freeze([]) as unknown as string[];

/**
 * One WebSocket: its routing state and the engine's view of the socket (a Sink), in one object.
 * Frames written in one tick go out together in corked batches of up to BATCH_FLUSH_BYTES (one
 * syscall instead of one per token). A send on a closed socket is a normal disconnect.
 */
class Connection implements Sink {
  /** Set once uWS opens the socket. */
  private ws: WebSocket<UserData> | null = null;
  closed = false;
  attachment: Attachment | null = null;
  private batch = NO_FRAMES;
  private batchBytes = 0;
  /** The socket's own backlog as of the last send: nothing reaches the socket until a batch goes. */
  private socketBytes = 0;
  private scheduled = false;

  constructor(
    public sessionId: string,
    readonly afterSeq: number | undefined,
  ) {}

  open(ws: WebSocket<UserData>, sessionId: string): void {
    this.ws = ws;
    this.sessionId = sessionId;
  }

  write(frame: string): boolean {
    if (this.closed) return false;
    if (!this.scheduled) this.schedule();
    this.batch.push(frame);
    this.batchBytes += frame.length;
    if (this.batchBytes >= BATCH_FLUSH_BYTES) this.send();
    return true;
  }

  writeMany(frames: readonly string[]): boolean {
    if (this.closed) return false;
    for (const frame of frames) this.write(frame);
    return true;
  }

  bufferedAmount(): number {
    if (this.closed) return 0;
    return this.scheduled ? this.socketBytes + this.batchBytes : (this.ws as WebSocket<UserData>).getBufferedAmount();
  }

  private schedule(): void {
    this.scheduled = true;
    if (this.batch === NO_FRAMES) this.batch = [];
    this.socketBytes = (this.ws as WebSocket<UserData>).getBufferedAmount();
    process.nextTick(flushSink, this);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.send();
    this.closed = true;
    this.ws?.end(code, reason);
  }

  /** End of the tick: the rest of the batch goes out, and the outbox may write what it held back. */
  flush(): void {
    this.scheduled = false;
    this.send();
    this.batch = NO_FRAMES;
    // Frames the outbox held back while the batch counted as buffered can go now; uWS would
    // only say so itself (drain) if the socket had backed up.
    if (!this.closed) this.attachment?.drained();
  }

  /** Writes the batch in one cork. Never calls back into the engine: it may be mid-write. */
  private send(): void {
    const frames = this.batch;
    if (frames.length === 0) return;
    this.batch = [];
    this.batchBytes = 0;
    const ws = this.ws;
    if (this.closed || !ws) return;
    ws.cork(() => {
      for (const frame of frames) ws.send(frame, false, false);
    });
    this.socketBytes = ws.getBufferedAmount();
  }
}

function flushSink(sink: Connection): void {
  sink.flush();
}
