// The engine: creates, finds and expires sessions; the one entry point every transport calls.
import { timingSafeEqual } from "node:crypto";
import { CloseCode, ErrorCode, type ServerMessage } from "@agentwire/protocol";
import type { Broker } from "../broker/broker.js";
import type { Agent } from "./agent.js";
import { Attachment, type AttachmentOptions } from "./attachment.js";
import { LagWatch } from "./outbox.js";
import { Cluster, type ClusterOptions, defaultClusterOptions } from "./cluster.js";
import { RandomIds } from "./ids.js";
import { type EngineContext, type EngineLimits, OPEN_POLICY, type OperatorPolicy, defaultLimits } from "./context.js";
import { ANONYMOUS, GRANTED, LocalQuotaStore, type Principal, type QuotaAnswer, type QuotaStore, QUOTA_STORE_UNAVAILABLE, isUnlimited, quotaError } from "./quota.js";
import type { SubmitError } from "./session-types.js";
import { TurnQueue } from "./turn-queue.js";
import { type Logger, silentLogger } from "../logger.js";
import { MemoryGuard, type MemoryGuardOptions } from "./memory-guard.js";
import { Session, type SessionSnapshot, type SubmitOutcome } from "./session.js";
import type { TurnRecord } from "./turn.js";
import type { Sink } from "./sink.js";
import { ToolRegistry } from "./tools.js";
import { type EngineTelemetry, type Telemetry, completeTelemetry } from "./telemetry.js";

export interface EngineOptions {
  agent: Agent;
  tools?: ToolRegistry;
  limits?: Partial<EngineLimits>;
  defaultModel?: string;
  /** Announced to clients in the `session` welcome; transports ping at this interval. @default 25000 */
  heartbeatMs?: number;
  logger?: Logger;
  now?: () => number;
  /**
   * Where sessions, leases and logs are shared with other nodes. Without one the engine stands
   * alone: nothing is stored twice, no lease is kept, and no event is copied anywhere.
   */
  broker?: Broker;
  /** Names this node in logs when there is no broker (a broker brings its own id). */
  nodeId?: string;
  cluster?: Partial<ClusterOptions>;
  /** The node-wide memory budget. @default V8 heap at 85 % of its limit, no RSS bound */
  memory?: MemoryGuardOptions;
  /** Where per-identity quotas are counted. @default this process only */
  quotas?: QuotaStore;
  /** Models, system prompt and client prompts as the operator allows them. @default any model, no operator prompt */
  policy?: OperatorPolicy;
  /** Hooks for metrics: counts and timings of sessions, links, turns and the cluster. @default none */
  telemetry?: Telemetry;
}

/** A session made, or why not: a code the transports map through `ERRORS`. */
export type CreateResult = { ok: true; sessionId: string; token: string } | { ok: false; error: SubmitError };

export type AuthResult =
  | { ok: true; session: Session }
  /** `owner_unavailable`: the broker could not be asked (retry); not the same as "no such session". */
  | { ok: false; code: typeof ErrorCode.SessionNotFound | typeof ErrorCode.Forbidden | typeof ErrorCode.OwnerUnavailable };

export class Engine {
  private readonly sessions = new Map<string, Session>();
  private readonly ctx: EngineContext;
  private readonly sweeper: NodeJS.Timeout;
  /** Null when standalone: one node needs no leases, replicas or stored copy of its logs. */
  private readonly cluster: Cluster | null;
  private readonly ids = new RandomIds();
  private drainingState: { retryAfterMs: number } | null = null;
  readonly broker: Broker | null;
  /** Capacity and the admission queue of this node. */
  readonly queue: TurnQueue;
  readonly quotas: QuotaStore;
  readonly nodeId: string;
  readonly memory: MemoryGuard;
  /** Lagging links, watched for stalls by one timer. */
  readonly lagWatch: LagWatch;
  private readonly attachmentOptions: AttachmentOptions;
  /** The hooks every layer reports to (transports too: links opened and closed, frames refused). */
  readonly telemetry: EngineTelemetry;

  constructor(options: EngineOptions) {
    const limits = { ...defaultLimits, ...options.limits };
    this.memory = new MemoryGuard({ maxRssBytes: 0, ...options.memory });
    const now = options.now ?? Date.now;
    this.queue = new TurnQueue({
      capacity: limits.maxConcurrentTurns,
      maxQueued: limits.maxQueuedTurns,
      timeoutMs: limits.queueTimeoutMs,
      updateMs: limits.queueUpdateMs,
      now,
    });
    this.quotas = options.quotas ?? new LocalQuotaStore();
    this.telemetry = completeTelemetry(options.telemetry);
    this.ctx = {
      agent: options.agent,
      logLimits: { maxEvents: limits.logMaxEvents, maxAgeMs: limits.logMaxAgeMs, maxBytes: limits.logMaxBytes },
      outboxLimits: { softBytes: limits.outboxSoftBytes, hardBytes: limits.outboxHardBytes },
      tools: options.tools ?? new ToolRegistry(),
      limits,
      defaultModel: options.defaultModel,
      heartbeatMs: options.heartbeatMs ?? 25_000,
      logger: options.logger ?? silentLogger,
      now,
      queue: this.queue,
      quotas: this.quotas,
      policy: options.policy ?? OPEN_POLICY,
      draining: () => this.drainingState,
      memory: this.memory,
      telemetry: this.telemetry,
    };
    this.lagWatch = new LagWatch(limits.slowReaderTimeoutMs, this.ctx.now);
    // Two full logs at once, then a tenth of one per second: resumes on an open link are rare.
    this.attachmentOptions = {
      outbox: { ...this.ctx.outboxLimits, watch: this.lagWatch, telemetry: this.telemetry },
      heartbeatMs: this.ctx.heartbeatMs,
      replayBytes: 2 * limits.logMaxBytes,
      telemetry: this.telemetry,
    };
    this.broker = options.broker ?? null;
    this.nodeId = this.broker?.nodeId ?? options.nodeId ?? `n_${this.ids.next(8)}`;
    this.cluster = this.broker
      ? new Cluster(this.broker, this.ctx, this.sessions, { ...defaultClusterOptions, ...options.cluster }, (id, deleteStored) => this.endLocal(id, deleteStored))
      : null;
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
    return this.queue.running;
  }

  get queuedTurns(): number {
    return this.queue.queued;
  }

  /** Budget characters held by every session log here (see EventLog.bytes); walks the sessions, so read it at scrape time only. */
  get logBytes(): number {
    let bytes = 0;
    for (const session of this.sessions.values()) bytes += session.log.bytes;
    return bytes;
  }

  /** Set once a graceful shutdown began: how long clients should wait before they retry. */
  get draining(): { retryAfterMs: number } | null {
    return this.drainingState;
  }

  /**
   * First step of a graceful shutdown: from now on no turn and no session starts here (clients are
   * told `server_draining` and to retry after `retryAfterMs`, elsewhere), while running turns go
   * on. Resolves once none runs, after `graceMs`, or when `signal` aborts, whichever is first.
   */
  async quiesce(graceMs: number, retryAfterMs: number, signal?: AbortSignal): Promise<void> {
    this.drainingState = { retryAfterMs };
    // Queued turns never started: they end now (server_draining, retryable), and their clients send them elsewhere.
    this.queue.drain();
    if (this.queue.running === 0 || graceMs <= 0 || signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, graceMs);
      signal?.addEventListener("abort", done, { once: true });
      void this.queue.whenIdle().then(done);
    });
  }

  /** Creates a session and its secret token (stored for every node), or null when it may not be made now. */
  async createSession(principal: Principal = ANONYMOUS): Promise<{ sessionId: string; token: string } | null> {
    const created = await this.tryCreateSession(principal);
    return created.ok ? { sessionId: created.sessionId, token: created.token } : null;
  }

  /**
   * Creates a session for `principal`, or says why not: the node's session limit or memory budget (`overloaded`),
   * or the principal's `sessions` / `sessions_per_minute` quota (`quota_exceeded`, naming the limit).
   */
  async tryCreateSession(principal: Principal = ANONYMOUS): Promise<CreateResult> {
    if (this.sessions.size >= this.ctx.limits.maxSessions || this.memory.overloaded) {
      return { ok: false, error: { code: ErrorCode.Overloaded, message: "the server is at its session limit or memory budget", retryable: true, retryAfterMs: 5000 } };
    }
    const limited = !isUnlimited(principal.limits);
    if (limited) {
      const { limits, identity } = principal;
      let answer: QuotaAnswer;
      try {
        answer = await this.quotas.admit(identity, { hold: { kind: "sessions", limit: limits.sessions }, take: { kind: "sessions_per_minute", limit: limits.sessions_per_minute, amount: 1 } }, this.ctx.now());
      } catch (err) {
        this.ctx.logger.warn({ err: (err as Error).message }, "quota store unavailable");
        return { ok: false, error: QUOTA_STORE_UNAVAILABLE };
      }
      if (!answer.ok) {
        this.telemetry.quotaRefused(answer.limit);
        return { ok: false, error: quotaError(answer) };
      }
    }
    const sessionId = `s_${this.ids.next(12)}`;
    const token = this.ids.next(24);
    const session = new Session(sessionId, token, this.ctx, principal);
    if (limited) session.countAsCreated();
    this.sessions.set(sessionId, session);
    if (this.cluster) await this.adopt(this.cluster, session);
    this.telemetry.sessionCreated();
    this.ctx.logger.info({ sessionId, identity: principal.identity }, "session created");
    return { ok: true, sessionId, token };
  }

  /**
   * Counts one more open link (WebSocket or SSE) in the session's principal's `connections` quota; call
   * `releaseConnection` when it closes (only after a granted answer). Immediate unless the store is shared.
   */
  admitConnection(session: Session): QuotaAnswer | Promise<QuotaAnswer> {
    const quotas = session.quotas;
    if (!quotas) return GRANTED;
    const { identity, limits } = session.principal;
    const answer = quotas.admit(identity, { hold: { kind: "connections", limit: limits.connections } }, this.ctx.now());
    return answer instanceof Promise ? answer.then((a) => this.counted(a)) : this.counted(answer);
  }

  /** A refusal counted in the quota metrics; the answer as it was. */
  private counted(answer: QuotaAnswer): QuotaAnswer {
    if (!answer.ok) this.telemetry.quotaRefused(answer.limit);
    return answer;
  }

  releaseConnection(session: Session): void {
    session.quotas?.release(session.principal.identity, "connections");
  }

  private async adopt(cluster: Cluster, session: Session): Promise<void> {
    const sessionId = session.id;
    try {
      await cluster.adopt(session);
    } catch (err) {
      // The broker is down: the session still works here; other nodes learn of it once it is back.
      this.ctx.logger.warn({ sessionId, err: (err as Error).message }, "session not yet shared with other nodes");
    }
  }

  /** Checks the token of a session held here, in constant time. Sessions of other nodes: `authorizeAny`. */
  authorize(sessionId: string, token: string | undefined): AuthResult {
    const session = this.sessions.get(sessionId);
    if (!session) return { ok: false, code: ErrorCode.SessionNotFound };
    return checkToken(session, token);
  }

  /** Like `authorize`, but finds sessions held by other nodes too (then follows or takes them over). */
  async authorizeAny(sessionId: string, token: string | undefined): Promise<AuthResult> {
    const local = this.sessions.get(sessionId);
    if (local) return checkToken(local, token);
    if (token === undefined) return { ok: false, code: ErrorCode.Forbidden };
    if (!this.cluster) return { ok: false, code: ErrorCode.SessionNotFound };
    let session: Session | null;
    try {
      session = await this.cluster.open(sessionId);
    } catch (err) {
      this.ctx.logger.warn({ sessionId, err: (err as Error).message }, "session lookup failed");
      return { ok: false, code: ErrorCode.OwnerUnavailable };
    }
    if (!session) return { ok: false, code: ErrorCode.SessionNotFound };
    return checkToken(session, token);
  }

  get(sessionId: string): Session | undefined {
    return this.sessions.get(sessionId);
  }

  /** The session's snapshot, from its owner wherever that is. */
  async snapshot(session: Session): Promise<SessionSnapshot> {
    if (session.role === "owner" || !this.cluster) return session.snapshot();
    return (await this.cluster.ask(session, "snapshot", null)) as SessionSnapshot;
  }

  /** One turn's record (status, text so far, usage), from the session's owner. */
  async turnRecord(session: Session, turnId: string): Promise<TurnRecord | undefined> {
    if (session.role === "owner" || !this.cluster) return session.turn(turnId);
    return ((await this.cluster.ask(session, "turn", turnId)) as TurnRecord | null) ?? undefined;
  }

  /** Attaches a transport link: welcome, replay after `afterSeq` when given, then live. */
  attach(session: Session, sink: Sink, afterSeq: number | undefined): Attachment {
    const attachment = new Attachment(session, sink, this.attachmentOptions);
    attachment.start(afterSeq);
    return attachment;
  }

  /** Applies a client message that arrived without a stream (HTTP POST). */
  submit(session: Session, message: Parameters<Session["submit"]>[0], onTurn?: (turnId: string) => void): SubmitOutcome | Promise<SubmitOutcome> {
    this.telemetry.clientMessage(message.type);
    const outcome = session.submit(message, onTurn);
    if (!(outcome instanceof Promise)) return this.answered(outcome);
    return outcome.then((o) => this.answered(o));
  }

  private answered(outcome: SubmitOutcome): SubmitOutcome {
    if (!outcome.ok) this.telemetry.clientError(outcome.error.code);
    return outcome;
  }

  /** Deletes a session everywhere: its owner ends it, stored data goes, attached clients get 4410. */
  async deleteSession(sessionId: string): Promise<boolean> {
    const session = this.sessions.get(sessionId);
    if (!session) return false;
    if (session.role === "replica" && this.cluster) {
      await this.cluster.ask(session, "delete", null).catch(() => undefined);
    }
    this.endLocal(sessionId, session.role === "owner");
    return true;
  }

  private endLocal(sessionId: string, deleteStored: boolean): void {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    this.sessions.delete(sessionId);
    session.end(CloseCode.SessionEnded, "session_ended");
    this.cluster?.forget(session, deleteStored);
    this.telemetry.sessionEnded("deleted");
    this.ctx.logger.info({ sessionId }, "session deleted");
  }

  /** Tells every attached client to reconnect elsewhere, then closes them (shutdown, deploy). */
  drain(reconnectAfterMs: number): void {
    const drain: ServerMessage = { type: "drain", reconnectAfterMs, reason: "server_draining" };
    for (const session of this.sessions.values()) {
      for (const attachment of session.attachments) {
        attachment.send(drain);
        attachment.close(CloseCode.ServerDraining, "server_draining");
      }
    }
  }

  /** Graceful stop: stops persisting, hands this node's sessions back to the cluster, then closes. */
  async shutdown(timeoutMs = 2000): Promise<void> {
    await this.cluster?.settle(timeoutMs);
    this.cluster?.close();
    await this.cluster?.release(timeoutMs);
    this.close();
  }

  /** Stops timers and cancels running turns. */
  close(): void {
    clearInterval(this.sweeper);
    this.queue.close();
    this.lagWatch.close();
    this.cluster?.close();
    for (const session of this.sessions.values()) {
      session.end(CloseCode.GoingAway, "server_closing");
      this.telemetry.sessionEnded("shutdown");
    }
    this.sessions.clear();
  }

  expireIdle(): number {
    const now = this.ctx.now();
    this.quotas.sweep(now);
    let expired = 0;
    for (const [id, session] of this.sessions) {
      if (session.role !== "owner" || !session.isIdle(now)) continue;
      this.sessions.delete(id);
      session.end(CloseCode.SessionEnded, "session_expired");
      this.cluster?.forget(session, true);
      this.telemetry.sessionEnded("expired");
      expired++;
    }
    if (expired > 0) this.ctx.logger.info({ expired }, "idle sessions expired");
    return expired;
  }
}

function checkToken(session: Session, token: string | undefined): AuthResult {
  if (token === undefined) return { ok: false, code: ErrorCode.Forbidden };
  const a = Buffer.from(token);
  const b = Buffer.from(session.token);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, code: ErrorCode.Forbidden };
  return { ok: true, session };
}
