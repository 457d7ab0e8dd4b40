// The Broker: what the engine needs from the shared store so any node can serve any session.
// Implementations: broker-memory.ts (one process) and broker-redis.ts (ioredis, many nodes).
import type { QuotaStore } from "../engine/quota.js";

/** A logged event as stored: its seq and its serialized frame. */
export interface StoredEvent {
  seq: number;
  frame: string;
}

/** What a node needs to authorize and take over a session. */
export interface SessionRecord {
  sessionId: string;
  token: string;
  createdAt: number;
  /** JSON of the session's configuration and history, rewritten by the owner after each turn. */
  state: string;
}

export type AppendResult =
  | { ok: true }
  /** Another node holds the lease: this node must stop writing for the session. */
  | { ok: false; reason: "not_owner" }
  /** The stored log ends at `lastSeq`, not right before the batch: resend from there. */
  | { ok: false; reason: "seq_mismatch"; lastSeq: number };

export type ReadResult = { ok: true; events: StoredEvent[] } | { ok: false; reason: "trimmed" };

/** A node-to-node request (a client message forwarded to the session's owner, a snapshot...). */
export interface NodeRequest {
  kind: string;
  sessionId: string;
  body: unknown;
}

export interface LogLimits {
  maxEvents: number;
  ttlMs: number;
}

/** What a node following a session hears about it. */
export interface SessionListener {
  events(events: StoredEvent[]): void;
  /** The session was deleted (by any node); nothing more will come. */
  deleted(): void;
}

export interface Broker {
  /** This node's id, unique in the cluster. */
  readonly nodeId: string;
  /** This process: a node restarted with the same id is a new incarnation, and its heartbeat says so. */
  readonly incarnation: string;
  /** False while the link to the shared store is down. */
  isReady(): boolean;

  saveSession(record: SessionRecord, ttlMs: number): Promise<void>;
  loadSession(sessionId: string): Promise<SessionRecord | null>;
  deleteSession(sessionId: string): Promise<void>;

  /** Takes the session's lease if free (or already ours); returns the holder afterwards. */
  acquireLease(sessionId: string, ttlMs: number): Promise<string>;
  /** Extends our leases; returns the ids we no longer hold. */
  renewLeases(sessionIds: readonly string[], ttlMs: number): Promise<string[]>;
  /** Gives up the session's lease if `holder` (default: this node) holds it. */
  releaseLease(sessionId: string, holder?: string): Promise<void>;
  leaseHolder(sessionId: string): Promise<string | null>;
  /**
   * Marks this node alive for `ttlMs` (renewed with its leases); 0 removes the mark (graceful
   * leave). Other nodes ask this once per owner node instead of once per session it owns.
   */
  heartbeat(ttlMs: number): Promise<void>;
  /** For each node id, the incarnation its live heartbeat names, or null when it lapsed. */
  nodeIncarnations(nodeIds: readonly string[]): Promise<(string | null)[]>;

  /**
   * Appends events (consecutive seqs, starting right after the stored last seq) and publishes them,
   * atomically, if this node holds the lease. `force` accepts a jump in seq (after a log gap).
   */
  append(sessionId: string, events: readonly StoredEvent[], limits: LogLimits, force?: boolean): Promise<AppendResult>;
  /** Events after `afterSeq` (up to `limit`; -1 reads from the oldest held), or `trimmed` when some are gone. */
  read(sessionId: string, afterSeq: number, limit: number): Promise<ReadResult>;
  /** Highest stored seq, 0 for none. */
  lastSeq(sessionId: string): Promise<number>;
  /** Live events of a session, in order, as published by its owner, and its deletion. Resolves once subscribed. */
  subscribe(sessionId: string, listener: SessionListener): Promise<() => Promise<void>>;

  /** Sends a request to a node and waits for its reply. Rejects with BrokerTimeout after `timeoutMs`. */
  request(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<unknown>;
  /** Serves requests addressed to this node. */
  onRequest(handler: (request: NodeRequest) => Promise<unknown>): void;
  /** Called each time the link to the shared store comes back after an outage. */
  onReconnect(listener: () => void): void;

  /** Quotas shared by every node on this store; absent: each node counts its own. */
  quotaStore?(): QuotaStore;

  close(): Promise<void>;
}

export class BrokerTimeout extends Error {
  constructor(what: string) {
    super(`${what} timed out`);
    this.name = "BrokerTimeout";
  }
}

export class BrokerUnavailable extends Error {
  constructor(what: string) {
    super(`${what}: the broker is unavailable`);
    this.name = "BrokerUnavailable";
  }
}
