// In-process broker: the default for one node. Several instances on one MemoryStore act as several
// nodes. Delivery is asynchronous and ordered, as with Redis, so single-node runs take the real path.
import { randomBytes } from "node:crypto";
import {
  type AppendResult,
  type Broker,
  BrokerTimeout,
  type LogLimits,
  type NodeRequest,
  type ReadResult,
  type SessionListener,
  type SessionRecord,
  type StoredEvent,
} from "./broker.js";

/** Seqs and frames in parallel arrays: no object retained per event (the garbage collector thanks us). */
interface StoredLog {
  seqs: number[];
  frames: string[];
  lastSeq: number;
  expiresAt: number;
  /** The limit of the last append; reads ignore what is held beyond it. */
  maxEvents: number;
}

/** The shared state that Redis holds in a cluster. */
export class MemoryStore {
  readonly sessions = new Map<string, { record: SessionRecord; expiresAt: number }>();
  readonly leases = new Map<string, { holder: string; expiresAt: number }>();
  readonly logs = new Map<string, StoredLog>();
  readonly subscribers = new Map<string, Set<SessionListener>>();
  readonly nodes = new Map<string, (request: NodeRequest) => Promise<unknown>>();
  readonly reconnectListeners = new Set<() => void>();
  /** Node id -> when its heartbeat lapses, and the incarnation it names. */
  readonly alive = new Map<string, { expiresAt: number; incarnation: string }>();

  constructor(readonly now: () => number = Date.now) {}

  /** What a Redis restart without persistence does: everything stored is gone, and every node reconnects. */
  restart(): void {
    this.sessions.clear();
    this.leases.clear();
    this.logs.clear();
    this.alive.clear();
    for (const listener of this.reconnectListeners) listener();
  }
}

/** Runs callbacks later, strictly in the order they were queued. */
function later(fn: () => void): void {
  setImmediate(fn);
}

export class MemoryBroker implements Broker {
  readonly nodeId: string;
  readonly incarnation = randomBytes(6).toString("base64url");
  private readonly reconnectListeners: (() => void)[] = [];

  constructor(
    private readonly store: MemoryStore = new MemoryStore(),
    nodeId?: string,
  ) {
    this.nodeId = nodeId ?? `n_${randomBytes(6).toString("base64url")}`;
  }

  isReady(): boolean {
    return true;
  }

  async saveSession(record: SessionRecord, ttlMs: number): Promise<void> {
    this.store.sessions.set(record.sessionId, { record: { ...record }, expiresAt: this.store.now() + ttlMs });
  }

  async loadSession(sessionId: string): Promise<SessionRecord | null> {
    const entry = this.store.sessions.get(sessionId);
    if (!entry || entry.expiresAt < this.store.now()) return null;
    return { ...entry.record };
  }

  async deleteSession(sessionId: string): Promise<void> {
    this.store.sessions.delete(sessionId);
    this.store.logs.delete(sessionId);
    this.store.leases.delete(sessionId);
    const listeners = [...(this.store.subscribers.get(sessionId) ?? [])];
    later(() => {
      for (const listener of listeners) listener.deleted();
    });
  }

  async acquireLease(sessionId: string, ttlMs: number): Promise<string> {
    const now = this.store.now();
    const lease = this.store.leases.get(sessionId);
    if (!lease || lease.expiresAt <= now || lease.holder === this.nodeId) {
      this.store.leases.set(sessionId, { holder: this.nodeId, expiresAt: now + ttlMs });
      return this.nodeId;
    }
    return lease.holder;
  }

  async renewLeases(sessionIds: readonly string[], ttlMs: number): Promise<string[]> {
    const now = this.store.now();
    const lost: string[] = [];
    for (const id of sessionIds) {
      const lease = this.store.leases.get(id);
      if (lease && lease.holder === this.nodeId && lease.expiresAt > now) lease.expiresAt = now + ttlMs;
      else lost.push(id);
    }
    return lost;
  }

  async releaseLease(sessionId: string, holder = this.nodeId): Promise<void> {
    if (this.store.leases.get(sessionId)?.holder === holder) this.store.leases.delete(sessionId);
  }

  async leaseHolder(sessionId: string): Promise<string | null> {
    const lease = this.store.leases.get(sessionId);
    return lease && lease.expiresAt > this.store.now() ? lease.holder : null;
  }

  async heartbeat(ttlMs: number): Promise<void> {
    if (ttlMs > 0) this.store.alive.set(this.nodeId, { expiresAt: this.store.now() + ttlMs, incarnation: this.incarnation });
    else this.store.alive.delete(this.nodeId);
  }

  async nodeIncarnations(nodeIds: readonly string[]): Promise<(string | null)[]> {
    const now = this.store.now();
    return nodeIds.map((id) => {
      const alive = this.store.alive.get(id);
      return alive && alive.expiresAt > now ? alive.incarnation : null;
    });
  }

  async append(sessionId: string, events: readonly StoredEvent[], limits: LogLimits, force = false): Promise<AppendResult> {
    if ((await this.leaseHolder(sessionId)) !== this.nodeId) return { ok: false, reason: "not_owner" };
    const now = this.store.now();
    let log = this.store.logs.get(sessionId);
    if (!log || log.expiresAt < now) {
      log = { seqs: [], frames: [], lastSeq: log?.lastSeq ?? 0, expiresAt: 0, maxEvents: limits.maxEvents };
      this.store.logs.set(sessionId, log);
    }
    const first = events[0];
    if (!first) return { ok: true };
    if (first.seq !== log.lastSeq + 1 && !(force && first.seq > log.lastSeq)) return { ok: false, reason: "seq_mismatch", lastSeq: log.lastSeq };
    for (const e of events) {
      log.seqs.push(e.seq);
      log.frames.push(e.frame);
    }
    log.lastSeq = (events[events.length - 1] as StoredEvent).seq;
    // Trim in chunks: cutting the head on every append would cost O(maxEvents) per token.
    if (log.seqs.length > limits.maxEvents * 1.5 + 64) {
      log.seqs = log.seqs.slice(log.seqs.length - limits.maxEvents);
      log.frames = log.frames.slice(log.frames.length - limits.maxEvents);
    }
    log.expiresAt = now + limits.ttlMs;
    log.maxEvents = limits.maxEvents;
    const subscribers = this.store.subscribers.get(sessionId);
    if (subscribers) {
      const batch = events.map((e) => ({ seq: e.seq, frame: e.frame }));
      for (const listener of subscribers) later(() => listener.events(batch));
    }
    return { ok: true };
  }

  async read(sessionId: string, afterSeq: number, limit: number): Promise<ReadResult> {
    const log = this.store.logs.get(sessionId);
    const last = log?.lastSeq ?? 0;
    const seqs = log?.seqs ?? [];
    const held = Math.max(0, seqs.length - (log?.maxEvents ?? 0));
    const firstSeq = seqs[held] ?? last + 1;
    if (afterSeq < 0) afterSeq = firstSeq - 1;
    if (afterSeq > last || afterSeq < firstSeq - 1) return { ok: false, reason: "trimmed" };
    // Not index arithmetic: a forced append after a gap leaves holes in the seq range.
    let start = seqs.findIndex((seq, i) => i >= held && seq > afterSeq);
    if (start < 0) start = seqs.length;
    const events: StoredEvent[] = [];
    for (let i = start; i < Math.min(seqs.length, start + limit); i++) events.push({ seq: seqs[i] as number, frame: log?.frames[i] as string });
    return { ok: true, events };
  }

  async lastSeq(sessionId: string): Promise<number> {
    return this.store.logs.get(sessionId)?.lastSeq ?? 0;
  }

  async subscribe(sessionId: string, listener: SessionListener): Promise<() => Promise<void>> {
    let set = this.store.subscribers.get(sessionId);
    if (!set) {
      set = new Set();
      this.store.subscribers.set(sessionId, set);
    }
    set.add(listener);
    return async () => {
      set.delete(listener);
      if (set.size === 0) this.store.subscribers.delete(sessionId);
    };
  }

  request(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new BrokerTimeout(`request ${request.kind} to ${nodeId}`)), timeoutMs);
      later(() => {
        const handler = this.store.nodes.get(nodeId);
        if (!handler) return; // like a dead node: nobody answers, the timeout fires
        handler(JSON.parse(JSON.stringify(request))).then(
          (reply) => later(() => {
            clearTimeout(timer);
            resolve(reply === undefined ? undefined : JSON.parse(JSON.stringify(reply)));
          }),
          (err) => {
            clearTimeout(timer);
            reject(err);
          },
        );
      });
    });
  }

  onReconnect(listener: () => void): void {
    // One process: the store goes away only when a test restarts it.
    this.reconnectListeners.push(listener);
    this.store.reconnectListeners.add(listener);
  }

  onRequest(handler: (request: NodeRequest) => Promise<unknown>): void {
    this.store.nodes.set(this.nodeId, handler);
  }

  async close(): Promise<void> {
    this.store.nodes.delete(this.nodeId);
    for (const listener of this.reconnectListeners) this.store.reconnectListeners.delete(listener);
  }
}
