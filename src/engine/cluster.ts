// Ownership across nodes: leases, replicas that follow another node's log, forwarding, takeover.
import { type ClientMessage, CloseCode, ErrorCode } from "@agentwire/protocol";
import { type Broker, BrokerTimeout, type NodeRequest, type StoredEvent } from "../broker/broker.js";
import type { EngineContext } from "./context.js";
import { LogPersister, type PersisterOptions, sessionRecord } from "./persister.js";
import { ANONYMOUS, type Principal } from "./quota.js";
import { Session, type SessionState, type SubmitOutcome } from "./session.js";

export interface ClusterOptions {
  /** Lease time to live; an owner that stops renewing loses its sessions after this (ms). @default 5000 */
  leaseTtlMs: number;
  /** How long a forwarded message waits for the owner's answer (ms). @default 3000 */
  forwardTimeoutMs: number;
  /**
   * Token deltas may wait this long to share a broker round trip (ms). With 0 they still share one
   * whenever an append is in flight (one at a time per session), which batches under load without
   * delaying anything when idle. @default 0
   */
  batchMs: number;
}

export const defaultClusterOptions: ClusterOptions = { leaseTtlMs: 5000, forwardTimeoutMs: 3000, batchMs: 0 };

const READ_BATCH = 1000;
/** Lease holders asked for at once by the watch loop. */
const WATCH_CHUNK = 500;
/** A replica with no client and no message for this long stops following its session. */
const REPLICA_IDLE_MS = 30_000;

interface Replica {
  holder: string;
  /** The holder's incarnation as this replica first saw its heartbeat: a different one means it restarted. */
  incarnation?: string;
  unsubscribe: (() => Promise<void>) | null;
  /** Live events wait here while the log is being filled from the broker. */
  queue: StoredEvent[];
  filling: boolean;
}

export class Cluster {
  private readonly persisters = new Map<string, LogPersister>();
  private readonly replicas = new Map<string, Replica>();
  /** Takeovers in flight, by session id. */
  private readonly takeovers = new Map<string, Promise<void>>();
  private readonly opening = new Map<string, Promise<Session | null>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private watching = false;
  /** When the broker link last came back (-Infinity: never lost). */
  private reconnectedAt = Number.NEGATIVE_INFINITY;
  /** Shared by every persister: per-session closures and option objects add up at 100k sessions. */
  private readonly persisterOptions: PersisterOptions;

  constructor(
    private readonly broker: Broker,
    private readonly ctx: EngineContext,
    private readonly sessions: Map<string, Session>,
    private readonly options: ClusterOptions,
    /** Ends a session here; `deleteStored` also deletes it from the broker (this node owned it). */
    private readonly endLocal: (sessionId: string, deleteStored: boolean) => void,
  ) {
    this.persisterOptions = {
      batchMs: options.batchMs,
      limits: { maxEvents: ctx.limits.logMaxEvents, ttlMs: ctx.limits.sessionIdleMs + 3_600_000 },
      metaTtlMs: ctx.limits.sessionIdleMs + 3_600_000,
      logger: ctx.logger,
      telemetry: ctx.telemetry,
      onNotOwner: (s) => void this.reclaim(s),
    };
    broker.onRequest((request) => this.serve(request));
    // A store that restarted empty forgets our leases and sessions: re-store them now, not at the next renewal.
    broker.onReconnect(() => {
      this.reconnectedAt = ctx.now();
      void this.renew();
      // Appends that failed during the outage wait on a backoff timer: send them now.
      for (const persister of this.persisters.values()) persister.resync(Number.POSITIVE_INFINITY);
    });
    const renew = setInterval(() => void this.renew(), Math.max(100, options.leaseTtlMs / 3));
    const watch = setInterval(() => void this.watch(), Math.max(100, Math.min(1000, options.leaseTtlMs / 2)));
    for (const t of [renew, watch]) t.unref();
    this.timers.push(renew, watch);
    void this.renew();
  }

  get nodeId(): string {
    return this.broker.nodeId;
  }

  private get metaTtlMs(): number {
    return this.ctx.limits.sessionIdleMs + 3_600_000;
  }

  /** A session created here: store it, take its lease, persist its log from now on. */
  async adopt(session: Session): Promise<void> {
    // Owned from the start: if the broker is down now, lease renewal reclaims and stores it later.
    this.own(session, 0);
    await this.broker.saveSession(this.record(session), this.metaTtlMs);
    await this.broker.acquireLease(session.id, this.options.leaseTtlMs);
  }

  /** Finds a session another node created: takes it over if nobody owns it, else follows its owner. */
  open(sessionId: string): Promise<Session | null> {
    const existing = this.sessions.get(sessionId);
    if (existing) return Promise.resolve(existing);
    let pending = this.opening.get(sessionId);
    if (!pending) {
      pending = this.load(sessionId).finally(() => this.opening.delete(sessionId));
      this.opening.set(sessionId, pending);
    }
    return pending;
  }

  private async load(sessionId: string): Promise<Session | null> {
    const record = await this.broker.loadSession(sessionId);
    if (!record) {
      // A store that restarted empty has forgotten sessions until their owners store them again
      // (at once on their own reconnect, at the latest with their next lease renewal): until
      // then "not found" may be wrong, and a client told so would give up for good.
      if (this.ctx.now() - this.reconnectedAt < this.options.leaseTtlMs) throw new Error("the broker came back moments ago; the session may not be stored again yet");
      return null;
    }
    const session = new Session(sessionId, record.token, this.ctx, principalOf(record));
    session.role = "replica";
    await this.fill(session, -1);
    this.sessions.set(sessionId, session);
    const holder = await this.broker.leaseHolder(sessionId);
    if (holder && holder !== this.nodeId) await this.follow(session, holder);
    else await this.takeOver(session);
    return session;
  }

  /** Ends this node's part in a session (deleted or expired). */
  forget(session: Session, deleteStored: boolean): void {
    this.persisters.get(session.id)?.stop();
    this.persisters.delete(session.id);
    void this.replicas.get(session.id)?.unsubscribe?.();
    this.replicas.delete(session.id);
    const work = deleteStored ? this.broker.deleteSession(session.id) : this.broker.releaseLease(session.id);
    work.catch((err: Error) => this.ctx.logger.warn({ sessionId: session.id, err: err.message }, "could not clean up stored session"));
  }

  /** Asks the owner node of a replica for something (snapshot, turn record, delete). */
  async ask(session: Session, kind: string, body: unknown): Promise<unknown> {
    session.touch();
    const holder = this.replicas.get(session.id)?.holder;
    if (!holder) throw new Error("not a replica");
    return this.broker.request(holder, { kind, sessionId: session.id, body }, this.options.forwardTimeoutMs);
  }

  /**
   * Graceful leave, first step: waits until every owned session's log and state are stored, so the
   * node that takes a session over finds its last events (a turn that just ended). Bounded by
   * `timeoutMs`; a broker that is down cannot be waited for.
   */
  async settle(timeoutMs: number): Promise<void> {
    const stored = Promise.all([...this.persisters.values()].map((p) => p.whenStored()));
    await Promise.race([stored, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /**
   * Graceful leave: gives up this node's leases so other nodes take its sessions over at the next
   * message instead of waiting for the leases to lapse. Bounded by `timeoutMs`.
   */
  async release(timeoutMs: number): Promise<void> {
    const ids = [...this.persisters.keys()];
    // Without our heartbeat, nodes following our sessions check their leases at once and find them free.
    const work = Promise.allSettled([...ids.map((id) => this.broker.releaseLease(id)), this.broker.heartbeat(0)]);
    await Promise.race([work, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /** Stops all broker traffic of this node: nothing more is renewed, persisted or saved. */
  close(): void {
    for (const t of this.timers) clearInterval(t);
    for (const session of this.sessions.values()) session.hooks = null;
    for (const p of this.persisters.values()) p.stop();
    for (const r of this.replicas.values()) void r.unsubscribe?.();
  }

  private record(session: Session) {
    return sessionRecord(session);
  }

  private own(session: Session, persistedSeq: number): void {
    const persister = new LogPersister(session, this.broker, this.persisterOptions, persistedSeq);
    this.persisters.set(session.id, persister);
    session.hooks = persister;
  }

  /**
   * Takes a session over, once at a time per session: a watch pass, a forwarded message and an attach that
   * all find the lease free share one takeover (two would each end the orphaned turn, twice).
   */
  private takeOver(session: Session): Promise<void> {
    let running = this.takeovers.get(session.id);
    if (!running) {
      running = this.takeOverOnce(session).finally(() => this.takeovers.delete(session.id));
      this.takeovers.set(session.id, running);
    }
    return running;
  }

  private async takeOverOnce(session: Session): Promise<void> {
    if (!(await this.broker.loadSession(session.id))) {
      // A store that restarted empty knows no session until its owner stores it again (within a lease
      // time): ending it now would send its clients away for good while the owner still runs it.
      if (this.ctx.now() - this.reconnectedAt < this.options.leaseTtlMs) return;
      // Deleted (or expired) elsewhere: end it here too rather than bring it back to life.
      this.endLocal(session.id, true);
      return;
    }
    const holder = await this.broker.acquireLease(session.id, this.options.leaseTtlMs);
    if (holder !== this.nodeId) return this.follow(session, holder);
    const replica = this.replicas.get(session.id);
    this.replicas.delete(session.id);
    await replica?.unsubscribe?.();
    await this.fill(session, session.log.lastSeq);
    const record = await this.broker.loadSession(session.id);
    const state = record ? (JSON.parse(record.state) as SessionState) : null;
    const stored = session.log.lastSeq;
    this.own(session, stored);
    session.promote(state);
    this.ctx.telemetry.takeover();
    this.ctx.logger.info({ sessionId: session.id, node: this.nodeId }, "session taken over");
  }

  private async follow(session: Session, holder: string): Promise<void> {
    const existing = this.replicas.get(session.id);
    if (existing) {
      existing.holder = holder;
      return;
    }
    const replica: Replica = { holder, unsubscribe: null, queue: [], filling: true };
    this.replicas.set(session.id, replica);
    session.role = "replica";
    session.ownerLink = { submit: (message) => this.forward(session, message) };
    replica.unsubscribe = await this.broker.subscribe(session.id, {
      events: (events) => {
        replica.queue.push(...events);
        if (!replica.filling) void this.drain(session, replica);
      },
      // Deleted through another node: its clients here learn at once (4410), not at a lease check.
      deleted: () => {
        if (this.replicas.get(session.id) === replica) this.endLocal(session.id, false);
      },
    });
    // Subscribed first, then read: anything published in between is in the queue and deduplicated.
    await this.fill(session, session.log.lastSeq);
    replica.filling = false;
    await this.drain(session, replica);
  }

  /** Reads the stored log after `afterSeq` (-1: from its start) into the session's local log. */
  private async fill(session: Session, afterSeq: number): Promise<void> {
    let after = afterSeq;
    for (;;) {
      const result = await this.broker.read(session.id, after, READ_BATCH);
      if (!result.ok) return;
      for (const e of result.events) session.ingest(e.seq, e.frame);
      if (result.events.length < READ_BATCH) return;
      after = (result.events[result.events.length - 1] as StoredEvent).seq;
    }
  }

  /** Applies queued live events in order; a gap is filled from the stored log first. */
  private async drain(session: Session, replica: Replica): Promise<void> {
    if (replica.filling) return;
    while (replica.queue.length > 0) {
      const next = replica.queue[0] as StoredEvent;
      const expected = session.ingest(next.seq, next.frame);
      if (expected === null) {
        replica.queue.shift();
        continue;
      }
      replica.filling = true;
      await this.fill(session, expected - 1).catch(() => {});
      replica.filling = false;
      if (session.log.lastSeq + 1 < next.seq) {
        // The gap is gone from the stored log too: clients must resume and learn recovered: false.
        session.log.reset(next.seq - 1);
        for (const a of session.attachments) a.close(CloseCode.Replaced, "log_gap");
      }
    }
  }

  private async forward(session: Session, message: ClientMessage, attempt = 0): Promise<SubmitOutcome> {
    // Mid-takeover the session is neither a replica nor yet the owner: wait for it to be one or the other.
    const takeover = this.takeovers.get(session.id);
    if (takeover) {
      await takeover.catch(() => undefined);
      if (attempt > 1) return unavailable(new Error("the session is changing owners"));
      return this.forward(session, message, attempt + 1);
    }
    const replica = this.replicas.get(session.id);
    if (session.role === "owner") return session.submit(message);
    // A replica with no owner to follow (between a failed takeover and the next watch): submitting here would
    // come straight back through this forward. The client retries shortly (its message id makes that safe).
    if (!replica) return unavailable(new Error("the session is between owners"));
    try {
      this.ctx.telemetry.forwarded();
      const reply = (await this.broker.request(replica.holder, { kind: "submit", sessionId: session.id, body: message }, this.options.forwardTimeoutMs)) as SubmitOutcome | { notOwner: true };
      if (!("notOwner" in reply)) return reply;
    } catch (err) {
      if (err instanceof BrokerTimeout) this.ctx.telemetry.forwardTimeout();
      if (!(err instanceof BrokerTimeout) || attempt > 0) return unavailable(err as Error);
    }
    if (attempt > 0) return unavailable(new Error("owner moved twice"));
    const holder = await this.broker.leaseHolder(session.id).catch(() => undefined);
    if (holder === undefined) return unavailable(new Error("broker unavailable"));
    if (!holder || holder === this.nodeId) await this.takeOver(session);
    else replica.holder = holder;
    return this.forward(session, message, attempt + 1);
  }

  private async serve(request: NodeRequest): Promise<unknown> {
    const session = this.sessions.get(request.sessionId);
    // Asked by a follower that saw this node restart: whether this process owns the session.
    if (request.kind === "owns") return session?.role === "owner";
    if (!session || session.role !== "owner") return { notOwner: true };
    switch (request.kind) {
      case "submit":
        return session.submit(request.body as ClientMessage);
      case "snapshot":
        return session.snapshot();
      case "turn":
        return session.turn(String(request.body)) ?? null;
      case "delete":
        this.endLocal(session.id, true);
        return { ok: true };
      default:
        throw new Error(`unknown request ${request.kind}`);
    }
  }

  /** Extends our leases; a lease we lost is taken back if free (Redis restarted), else we follow the new owner. */
  private async renew(): Promise<void> {
    // Lapses with the leases: a node that dies stops renewing both.
    this.broker.heartbeat(this.options.leaseTtlMs).catch(() => {});
    const owned = [...this.persisters.keys()];
    if (owned.length === 0) return;
    let lost: string[];
    try {
      lost = await this.broker.renewLeases(owned, this.options.leaseTtlMs);
    } catch {
      return; // broker down: keep serving local sessions, try again next round
    }
    for (const id of lost) {
      const session = this.sessions.get(id);
      if (session) await this.reclaim(session).catch(() => {});
    }
  }

  private async reclaim(session: Session): Promise<void> {
    const holder = await this.broker.acquireLease(session.id, this.options.leaseTtlMs);
    const persister = this.persisters.get(session.id);
    if (holder === this.nodeId) {
      await this.broker.saveSession(this.record(session), this.metaTtlMs);
      persister?.resync(await this.broker.lastSeq(session.id));
      return;
    }
    persister?.stop();
    this.persisters.delete(session.id);
    this.ctx.logger.warn({ sessionId: session.id, holder }, "lease lost to another node");
    session.demote({ submit: (message) => this.forward(session, message) });
    await this.follow(session, holder);
  }

  /** Replicas whose owner's lease lapsed are taken over; replicas nobody watches are dropped. */
  private async watch(): Promise<void> {
    // One pass at a time: a slow broker must not stack passes up.
    if (this.watching) return;
    this.watching = true;
    try {
      await this.watchOnce();
    } finally {
      this.watching = false;
    }
  }

  /**
   * The lease's node restarted under the same id: a new process knows nothing of the old one's sessions, whose
   * lease it would never renew nor release, so a turn running there would never end. Asks it; if it does not own
   * the session, the stale lease goes and this node takes the session over. If it does (it loaded it since), the
   * replica follows its new incarnation.
   */
  private async checkRestarted(session: Session, replica: Replica, holder: string, incarnation: string): Promise<void> {
    const owns = await this.broker.request(holder, { kind: "owns", sessionId: session.id, body: null }, this.options.forwardTimeoutMs).catch(() => undefined);
    if (owns === true) replica.incarnation = incarnation;
    else if (owns === false) {
      this.ctx.logger.info({ sessionId: session.id, node: holder }, "owner restarted without the session: taking it over");
      await this.broker.releaseLease(session.id, holder).catch(() => undefined);
      await this.takeOver(session).catch(() => {});
    }
  }

  private async watchOnce(): Promise<void> {
    const watched: [string, Replica, Session][] = [];
    for (const [id, replica] of this.replicas) {
      const session = this.sessions.get(id);
      if (!session) continue;
      // Kept a while after its last client or message, so a polling client does not rebuild it each time.
      if (session.attachments.length === 0 && !replica.filling && this.ctx.now() - session.lastActivity > REPLICA_IDLE_MS) {
        this.replicas.delete(id);
        this.sessions.delete(id);
        void replica.unsubscribe?.();
        continue;
      }
      watched.push([id, replica, session]);
    }
    // A live owner renews all its leases together: only sessions of owners whose heartbeat lapsed
    // (or left), or names another incarnation (it restarted with the same id), need their own lease
    // checked. One question per owner node, not per session.
    if (watched.length === 0) return;
    const owners = [...new Set(watched.map(([, replica]) => replica.holder))];
    const incarnations = await this.broker.nodeIncarnations(owners).catch(() => null);
    if (!incarnations) return;
    const current = new Map(owners.map((owner, i) => [owner, incarnations[i] ?? null]));
    const suspects = watched.filter(([, replica]) => {
      const now = current.get(replica.holder) ?? null;
      if (now === null) return true;
      replica.incarnation ??= now;
      return replica.incarnation !== now;
    });
    // Asked together (one pipelined burst per chunk), not one round trip after another.
    for (let i = 0; i < suspects.length; i += WATCH_CHUNK) {
      const chunk = suspects.slice(i, i + WATCH_CHUNK);
      const holders = await Promise.all(chunk.map(([id]) => this.broker.leaseHolder(id).catch(() => undefined)));
      for (const [k, [, replica, session]] of chunk.entries()) {
        const holder = holders[k];
        if (holder === null) await this.takeOver(session).catch(() => {});
        else if (holder && holder !== replica.holder) {
          replica.holder = holder;
          delete replica.incarnation;
        } else if (holder && current.get(holder)) await this.checkRestarted(session, replica, holder, current.get(holder) as string);
      }
    }
  }
}

function unavailable(err: Error): SubmitOutcome {
  return { ok: false, error: { code: ErrorCode.OwnerUnavailable, message: `the session's owner did not answer: ${err.message}`, retryable: true, retryAfterMs: 1000 } };
}

/** The principal a session was created for, from its stored record (the anonymous one for records without). */
function principalOf(record: { state: string }): Principal {
  try {
    return (JSON.parse(record.state) as SessionState).principal ?? ANONYMOUS;
  } catch {
    return ANONYMOUS;
  }
}
