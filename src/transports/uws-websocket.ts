// The WebSocket route: upgrade with auth and limits, then frames -> engine and engine -> frames.
import { CloseCode, ERRORS, ErrorCode, parseClientFrame } from "@agentwire/protocol";
import { type Attachment, type Engine, type Logger, type QuotaAnswer, type Session, type Sink, frozenEmpty, quotaError } from "../engine/index.js";
import { type CorsPolicy, ORIGIN_REFUSAL } from "./cors.js";
import { type AdmissionOptions, type ConnectionStats, admitLink, websocketPosition } from "./admission.js";
import { extractToken, readRequest, sendError } from "./http-util.js";
import type { TemplatedApp, WebSocket } from "./uws.js";

export type { ConnectionStats } from "./admission.js";

export interface WebSocketRouteOptions extends AdmissionOptions {
  /** Largest frame answered with a typed error; bigger frames up to 4x this close the link with 1009. */
  maxPayloadBytes: number;
  /** Seconds without traffic before uWS closes the link; pings go out automatically before that. */
  idleTimeoutS: number;
  /** Which browser origins may open a link (browsers send Origin on every upgrade; CORS does not apply). */
  cors: CorsPolicy;
  logger: Logger;
}

/** Per-connection state lives under one key: uWS merges user data onto the socket object itself. */
interface UserData {
  conn: Connection;
}

const SUBPROTOCOL = "agentwire.v1";

export function registerWebSocketRoute(app: TemplatedApp, engine: Engine, options: WebSocketRouteOptions, stats: ConnectionStats): void {
  const { logger } = options;

  /** One client frame to the engine: a typed error for what cannot be taken, the message otherwise. */
  const receiveFrame = (attachment: Attachment, text: string | null, isBinary: boolean, bytes: number) => {
    if (isBinary) {
      attachment.rejectFrame({ code: ErrorCode.BinaryNotSupported, message: "send JSON text frames" });
      return;
    }
    if (text === null || bytes > options.maxPayloadBytes) {
      attachment.rejectFrame({ code: ErrorCode.PayloadTooLarge, message: `frames are limited to ${options.maxPayloadBytes} bytes` });
      return;
    }
    const parsed = parseClientFrame(text);
    if (!parsed.ok) {
      attachment.rejectFrame(parsed.error);
      return;
    }
    try {
      attachment.receive(parsed.message);
    } catch (err) {
      // A bug must cost this link, not the process and every other session on it.
      logger.error({ err, sessionId: attachment.session.id, type: parsed.message.type }, "client message failed");
      attachment.close(CloseCode.InternalError, ErrorCode.Internal);
    }
  };

  /** An authorized link counts in its session's identity's `connections` quota first (a shared store answers later). */
  const attach = (ws: WebSocket<UserData>, conn: Connection) => {
    const session = engine.get(conn.sessionId);
    if (!session || session.isEnded) {
      conn.open(ws, conn.sessionId);
      conn.close(CloseCode.SessionNotFound, "session_not_found");
      return;
    }
    const admitted = engine.admitConnection(session);
    if (!(admitted instanceof Promise)) {
      welcome(ws, conn, session, admitted);
      return;
    }
    conn.open(ws, session.id);
    void admitted.then(
      (answer) => {
        if (!conn.closed) welcome(ws, conn, session, answer);
        else if (answer.ok) engine.releaseConnection(session);
      },
      // The shared quota store did not answer: like an owner that did not, reconnect with backoff.
      () => conn.close(CloseCode.OwnerUnavailable, ErrorCode.OwnerUnavailable),
    );
  };

  /** Welcome, replay and live events for an admitted link; then whatever it sent meanwhile. */
  const welcome = (ws: WebSocket<UserData>, conn: Connection, session: Session, answer: QuotaAnswer) => {
    // The session's own id string from now on: the one parsed from the URL can go.
    conn.open(ws, session.id);
    if (!answer.ok) {
      const error = quotaError(answer);
      conn.write(JSON.stringify({ type: "error", ...error }));
      conn.close(CloseCode.QuotaExceeded, ErrorCode.QuotaExceeded);
      return;
    }
    conn.quotaSession = session;
    const attachment = engine.attach(session, conn, conn.afterSeq);
    conn.attachment = attachment;
    logger.debug({ sessionId: conn.sessionId, afterSeq: conn.afterSeq }, "websocket attached");
    const early = conn.early;
    conn.early = NO_EARLY;
    for (const frame of early) if (conn.attachment === attachment) receiveFrame(attachment, frame.text, frame.isBinary, frame.bytes);
  };

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
      if (!options.cors.allows(info.headers.origin, info.headers.host)) {
        sendError(res, state, ORIGIN_REFUSAL.status, ORIGIN_REFUSAL.error);
        return;
      }
      const refused = admitLink(info, stats, options);
      if (refused) {
        sendError(res, state, refused.status, refused.error);
        return;
      }
      // A missing token is checked like a wrong one, after the upgrade: see below.
      const token = extractToken(info) ?? "";
      const position = websocketPosition(info);
      if (!position.ok) {
        sendError(res, state, position.refusal.status, position.refusal.error);
        return;
      }
      const afterSeq = position.afterSeq;
      const offered = (info.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim()).filter(Boolean);
      const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : (offered.find((p) => !p.startsWith("bearer.")) ?? "");
      // A session held here that the token opens is welcomed at once. Any other link is accepted and
      // checked once open, where a refusal is a close code (4401, 4404, 4004): a browser cannot read
      // an HTTP answer to an upgrade, and would take "no such session" for a network error. Sessions
      // of other nodes need the broker, and the upgrade must not wait for it: uWS's cork() can close
      // a socket upgraded in a later tick (it misreads the reallocated socket; uWebSockets.js #1108).
      const preauthorized = token !== "" && engine.authorize(sessionId, token).ok;
      const conn = new Connection(sessionId, afterSeq, preauthorized ? null : token);
      res.cork(() => res.upgrade<UserData>({ conn }, key, protocol, extensions, context));
    },

    open(ws) {
      const conn = ws.getUserData().conn;
      stats.websockets++;
      conn.counted = true;
      engine.telemetry.connectionOpened("ws");
      const token = conn.pendingToken;
      if (token === null) {
        attach(ws, conn);
        return;
      }
      conn.pendingToken = null;
      conn.open(ws, conn.sessionId);
      void engine.authorizeAny(conn.sessionId, token).then((auth) => {
        if (conn.closed) return;
        if (auth.ok) attach(ws, conn);
        else conn.close(ERRORS[auth.code].close ?? CloseCode.ProtocolViolation, auth.code);
      });
    },

    message(ws, data, isBinary) {
      const conn = ws.getUserData().conn;
      const attachment = conn.attachment;
      // uWS reuses `data` after this callback: a frame kept for later is copied out first.
      const text = isBinary || data.byteLength > options.maxPayloadBytes ? null : Buffer.from(data).toString("utf8");
      if (attachment) {
        receiveFrame(attachment, text, isBinary, data.byteLength);
        return;
      }
      // Still looking the session up: keep what the client sent, in order, for right after the welcome.
      if (conn.early.length >= MAX_EARLY_FRAMES) {
        conn.close(CloseCode.ProtocolViolation, "too_many_frames_before_welcome");
        return;
      }
      if (conn.early === NO_EARLY) conn.early = [];
      conn.early.push({ text, isBinary, bytes: data.byteLength });
    },

    drain(ws) {
      ws.getUserData().conn.attachment?.drained();
    },

    close(ws, code) {
      const conn = ws.getUserData().conn;
      conn.closed = true;
      if (conn.counted) {
        stats.websockets--;
        engine.telemetry.connectionClosed("ws", code);
      }
      conn.counted = false;
      if (conn.quotaSession) engine.releaseConnection(conn.quotaSession);
      conn.quotaSession = null;
      if (conn.attachment) {
        conn.attachment.detach();
        conn.attachment = null;
      }
      logger.debug({ sessionId: conn.sessionId, code }, "websocket closed");
    },
  });
}

/** A batch this big goes to the socket at once (uWS's cork buffer holds 16 KB): one syscall each. */
const BATCH_FLUSH_BYTES = 8 * 1024;

/** A client frame kept while its session is looked up; `text` is null for binary or oversized frames. */
interface EarlyFrame {
  text: string | null;
  isBinary: boolean;
  bytes: number;
}
const NO_EARLY = frozenEmpty<EarlyFrame>();
/** Frames a client may send before its welcome on a link accepted ahead of its check. */
const MAX_EARLY_FRAMES = 64;


/** What an idle connection's batch points at, so it holds no array. Frozen: a push is a bug. */
const NO_FRAMES = frozenEmpty<string>();

/**
 * One WebSocket: its routing state and the engine's view of the socket (a Sink), in one object.
 * Frames written in one tick go out together in corked batches of up to BATCH_FLUSH_BYTES (one
 * syscall instead of one per token). A send on a closed socket is a normal disconnect.
 */
class Connection implements Sink {
  /** Set once uWS opens the socket. */
  private ws: WebSocket<UserData> | null = null;
  closed = false;
  /** Counted in the connection limit (from open to close). */
  counted = false;
  attachment: Attachment | null = null;
  /** The session whose identity counts this link in its `connections` quota (released on close). */
  quotaSession: Session | null = null;
  /** Frames that arrived while the session was being looked up (accepted before its check). */
  early: EarlyFrame[] = NO_EARLY;
  private batch = NO_FRAMES;
  private batchBytes = 0;
  /** The socket's own backlog as of the last send: nothing reaches the socket until a batch goes. */
  private socketBytes = 0;
  private scheduled = false;

  constructor(
    public sessionId: string,
    readonly afterSeq: number | undefined,
    /** Set when the link was accepted before its token could be checked (session held elsewhere). */
    public pendingToken: string | null,
  ) {}

  open(ws: WebSocket<UserData>, sessionId: string): void {
    this.ws = ws;
    this.sessionId = sessionId;
  }

  write(frame: string): boolean {
    if (this.closed) return false;
    if (!this.scheduled) this.schedule();
    if (this.batch === NO_FRAMES) this.batch = [];
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
    // Frames the outbox held back while the batch counted as buffered can go now; uWS would
    // only say so itself (drain) if the socket had backed up.
    if (!this.closed) this.attachment?.drained();
  }

  /** Writes the batch in one cork. Never calls back into the engine: it may be mid-write. */
  private send(): void {
    const frames = this.batch;
    if (frames.length === 0) return;
    this.batch = NO_FRAMES;
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
