// The engine: creates, finds and expires sessions; the one entry point every transport calls.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { CloseCode, ErrorCode, type ServerMessage } from "../../protocol/index.js";
import type { Agent } from "./agent.js";
import { Attachment } from "./attachment.js";
import { type EngineContext, type EngineLimits, defaultLimits } from "./context.js";
import { type Logger, silentLogger } from "./logger.js";
import { Session, type SubmitOutcome } from "./session.js";
import type { Sink } from "./sink.js";
import { type ToolRegistry, defaultTools } from "./tools.js";

export interface EngineOptions {
  agent: Agent;
  tools?: ToolRegistry;
  limits?: Partial<EngineLimits>;
  defaultModel?: string;
  /** Announced to clients in the `session` welcome; transports ping at this interval. @default 25000 */
  heartbeatMs?: number;
  logger?: Logger;
  now?: () => number;
}

export type AuthResult = { ok: true; session: Session } | { ok: false; code: typeof ErrorCode.SessionNotFound | typeof ErrorCode.Forbidden };

export class Engine {
  private readonly sessions = new Map<string, Session>();
  private readonly ctx: EngineContext;
  private running = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: EngineOptions) {
    const limits = { ...defaultLimits, ...options.limits };
    this.ctx = {
      agent: options.agent,
      tools: options.tools ?? defaultTools(),
      limits,
      defaultModel: options.defaultModel,
      heartbeatMs: options.heartbeatMs ?? 25_000,
      logger: options.logger ?? silentLogger,
      now: options.now ?? Date.now,
      runningTurns: () => this.running,
      turnStarted: () => {
        this.running++;
      },
      turnEnded: () => {
        this.running--;
      },
    };
    const sweepMs = Math.max(1000, Math.min(30_000, limits.sessionIdleMs / 4));
    this.sweeper = setInterval(() => this.expireIdle(), sweepMs);
    this.sweeper.unref();
  }

  get limits(): EngineLimits {
    return this.ctx.limits;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get runningTurns(): number {
    return this.running;
  }

  /** Creates a session and its secret token, or null when the server holds its maximum. */
  createSession(): { sessionId: string; token: string } | null {
    if (this.sessions.size >= this.ctx.limits.maxSessions) return null;
    const sessionId = `s_${randomBytes(12).toString("base64url")}`;
    const token = randomBytes(24).toString("base64url");
    this.sessions.set(sessionId, new Session(sessionId, token, this.ctx));
    this.ctx.logger.info({ sessionId }, "session created");
    return { sessionId, token };
  }

  /** Finds the session and checks its token in constant time. */
  authorize(sessionId: string, token: string | undefined): AuthResult {
    const session = this.sessions.get(sessionId);
    if (!session) return { ok: false, code: ErrorCode.SessionNotFound };
    if (token === undefined) return { ok: false, code: ErrorCode.Forbidden };
    const a = Buffer.from(token);
    const b = Buffer.from(session.token);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, code: ErrorCode.Forbidden };
    return { ok: true, session };
  }

  get(sessionId: string): Session | undefined {
    return this.sessions.get(sessionId);
  }

  /** Attaches a transport link: welcome, replay after `afterSeq` when given, then live. */
  attach(session: Session, sink: Sink, afterSeq: number | undefined): Attachment {
    const { outboxSoftBytes, outboxHardBytes } = this.ctx.limits;
    const attachment = new Attachment(session, sink, { softBytes: outboxSoftBytes, hardBytes: outboxHardBytes }, this.ctx.heartbeatMs);
    attachment.start(afterSeq);
    return attachment;
  }

  /** Applies a client message that arrived without a stream (HTTP POST). */
  submit(session: Session, message: Parameters<Session["submit"]>[0], onTurn?: (turnId: string) => void): SubmitOutcome {
    return session.submit(message, onTurn);
  }

  deleteSession(sessionId: string): boolean {
    const session = this.sessions.get(sessionId);
    if (!session) return false;
    this.sessions.delete(sessionId);
    session.end(CloseCode.SessionEnded, "session_ended");
    this.ctx.logger.info({ sessionId }, "session deleted");
    return true;
  }

  /** Tells every attached client to reconnect elsewhere, then closes them (shutdown, deploy). */
  drain(reconnectAfterMs: number): void {
    const drain: ServerMessage = { type: "drain", reconnectAfterMs, reason: "server_draining" };
    for (const session of this.sessions.values()) {
      for (const attachment of [...session.attachments]) {
        attachment.send(drain);
        attachment.close(CloseCode.ServerDraining, "server_draining");
      }
    }
  }

  /** Stops timers and cancels running turns. */
  close(): void {
    clearInterval(this.sweeper);
    for (const session of this.sessions.values()) session.end(CloseCode.GoingAway, "server_closing");
    this.sessions.clear();
  }

  expireIdle(): number {
    const now = this.ctx.now();
    let expired = 0;
    for (const [id, session] of this.sessions) {
      if (!session.isIdle(now)) continue;
      this.sessions.delete(id);
      session.end(CloseCode.SessionEnded, "session_expired");
      expired++;
    }
    if (expired > 0) this.ctx.logger.info({ expired }, "idle sessions expired");
    return expired;
  }
}
