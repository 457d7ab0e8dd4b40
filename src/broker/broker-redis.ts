// Redis broker on ioredis: leases, the event log as a Stream, pub/sub for live events and node requests.
// One connection for commands and publishing, one for subscribing (a subscribed link can do nothing else).
import { randomBytes } from "node:crypto";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { backoffMs } from "../backoff.js";
import type { Logger } from "../logger.js";
import {
  type AppendResult,
  type Broker,
  BrokerTimeout,
  BrokerUnavailable,
  type LogLimits,
  type NodeRequest,
  type ReadResult,
  type SessionListener,
  type SessionRecord,
  type StoredEvent,
} from "./broker.js";
import { ACQUIRE, APPEND, DELETE, DELETED_NOTICE, READ, RELEASE, RENEW } from "./redis-scripts.js";
import { RedisQuotaStore } from "./quota-redis.js";

export interface RedisBrokerOptions {
  /** `redis://host:port` of a single Redis. */
  url?: string;
  /** `host:port` seed nodes of a Redis Cluster (instead of `url`). */
  clusterNodes?: string[];
  /** Prefix of every key and channel; lets deployments and tests share a Redis. @default "aw:" */
  prefix?: string;
  /**
   * Session events over sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+): each message stays on the
   * shard that owns the session instead of being broadcast to every node. Cluster only.
   * @default true with `clusterNodes`
   */
  shardedPubSub?: boolean;
  nodeId?: string;
  /** How often the subscriber link is probed with a message to ourselves (ms). @default 2000 */
  probeIntervalMs?: number;
  /**
   * Ready only while a PING on the command link was answered within this long (ms): a Redis that stopped
   * answering (paused, overloaded, a dead route the socket has not noticed) is not ready within about this. @default 1000
   */
  healthTimeoutMs?: number;
  logger: Logger;
}

type Client = Redis | Cluster;
type Commands = {
  awAppend(...args: (string | number)[]): Promise<[number, number]>;
  awRead(...args: (string | number)[]): Promise<(number | string)[]>;
  awAcquire(...args: (string | number)[]): Promise<string>;
  awRenew(...args: (string | number)[]): Promise<number>;
  awRelease(...args: (string | number)[]): Promise<number>;
  awDelete(...args: (string | number)[]): Promise<number>;
};

interface Envelope {
  id: string;
  from: string;
  request?: NodeRequest;
  reply?: unknown;
  error?: string;
  probe?: boolean;
}

export class RedisBroker implements Broker {
  readonly nodeId: string;
  readonly incarnation = randomBytes(6).toString("base64url");
  private readonly prefix: string;
  private readonly cmd: Client & Commands;
  private readonly sub: Client;
  /** Sharded subscriptions for session channels (cluster mode), or null when they share `sub`. */
  private readonly ssub: Cluster | null;
  private readonly publishCommand: "PUBLISH" | "SPUBLISH";
  private readonly channels = new Map<string, Set<SessionListener>>();
  private readonly pending = new Map<string, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private handler: ((request: NodeRequest) => Promise<unknown>) | null = null;
  private pubsubAlive = false;
  private probeTimer: NodeJS.Timeout;
  private lastProbeSeen = 0;
  private closed = false;
  /** When a PING on the command link was last answered, and whether one is in flight. */
  private lastPong = 0;
  private pinging = false;
  private readonly healthTimer: NodeJS.Timeout;
  private quotas: RedisQuotaStore | null = null;

  constructor(private readonly options: RedisBrokerOptions) {
    this.nodeId = options.nodeId ?? `n_${randomBytes(6).toString("base64url")}`;
    this.prefix = options.prefix ?? "aw:";
    // Commands fail fast while disconnected instead of queueing without bound during an outage.
    const redisOptions: RedisOptions = { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: (n) => backoffMs(n, 200, 2000) };
    const make = (): Client =>
      options.clusterNodes?.length
        ? new Cluster(options.clusterNodes.map(parseHostPort), { redisOptions, enableOfflineQueue: false, clusterRetryStrategy: (n) => backoffMs(n, 200, 2000) })
        : new Redis(options.url ?? "redis://127.0.0.1:6379", redisOptions);
    this.cmd = make() as Client & Commands;
    this.sub = make();
    const sharded = Boolean(options.clusterNodes?.length) && (options.shardedPubSub ?? true);
    this.publishCommand = sharded ? "SPUBLISH" : "PUBLISH";
    this.ssub = sharded
      ? new Cluster((options.clusterNodes ?? []).map(parseHostPort), {
          redisOptions,
          shardedSubscribers: true,
          enableOfflineQueue: false,
          clusterRetryStrategy: (n) => backoffMs(n, 200, 2000),
        })
      : null;
    if (this.ssub) {
      this.ssub.on("error", (err: Error) => options.logger.warn({ err: err.message }, "redis link error"));
      this.ssub.on("smessage", (channel: string, payload: string) => this.dispatch(channel, payload));
      this.ssub.on("ready", () => void this.resubscribeSharded());
    }
    for (const [name, lua, keys] of [
      ["awAppend", APPEND, 3],
      ["awRead", READ, 2],
      ["awAcquire", ACQUIRE, 1],
      ["awRenew", RENEW, 2],
      ["awRelease", RELEASE, 1],
      ["awDelete", DELETE, 4],
    ] as const) {
      this.cmd.defineCommand(name, { lua, numberOfKeys: keys });
    }
    for (const client of [this.cmd, this.sub]) {
      client.on("error", (err: Error) => options.logger.warn({ err: err.message }, "redis link error"));
    }
    this.sub.on("ready", () => void this.resubscribe());
    this.sub.on("close", () => {
      this.pubsubAlive = false;
    });
    this.sub.on("message", (channel: string, payload: string) => this.dispatch(channel, payload));
    this.probeTimer = setInterval(() => this.probe(), options.probeIntervalMs ?? 2000);
    this.probeTimer.unref();
    this.healthTimer = setInterval(() => this.ping(), Math.max(25, Math.floor(this.healthTimeoutMs / 4)));
    this.healthTimer.unref();
    this.cmd.on("ready", () => this.ping());
  }

  /** Quotas counted in this Redis, so that they hold across every node on it. */
  quotaStore(): RedisQuotaStore {
    this.quotas ??= new RedisQuotaStore(this.cmd, { prefix: this.prefix, logger: this.options.logger });
    return this.quotas;
  }

  private key(sessionId: string, part: string): string {
    return `${this.prefix}{${sessionId}}:${part}`;
  }

  private aliveKey(nodeId: string): string {
    return `${this.prefix}alive:${nodeId}`;
  }

  private nodeChannel(nodeId: string): string {
    return `${this.prefix}node:${nodeId}`;
  }

  isReady(): boolean {
    const shardsReady = this.ssub === null || this.ssub.status === "ready";
    const answering = Date.now() - this.lastPong <= this.healthTimeoutMs;
    return !this.closed && this.cmd.status === "ready" && this.sub.status === "ready" && shardsReady && this.pubsubAlive && answering;
  }

  private get healthTimeoutMs(): number {
    return this.options.healthTimeoutMs ?? 1000;
  }

  /** One PING at a time on the command link; its answer keeps the node ready (see `healthTimeoutMs`). */
  private ping(): void {
    if (this.closed || this.pinging || this.cmd.status !== "ready") return;
    this.pinging = true;
    this.cmd
      .ping()
      .then(() => {
        this.lastPong = Date.now();
      })
      .catch(() => {})
      .finally(() => {
        this.pinging = false;
      });
  }

  async saveSession(record: SessionRecord, ttlMs: number): Promise<void> {
    const key = this.key(record.sessionId, "meta");
    await this.cmd.multi().hset(key, { token: record.token, createdAt: record.createdAt, state: record.state }).pexpire(key, ttlMs).exec();
  }

  async loadSession(sessionId: string): Promise<SessionRecord | null> {
    const h = await this.cmd.hgetall(this.key(sessionId, "meta"));
    if (!h.token) return null;
    return { sessionId, token: h.token, createdAt: Number(h.createdAt), state: h.state ?? "{}" };
  }

  async deleteSession(sessionId: string): Promise<void> {
    const keys = [this.key(sessionId, "meta"), this.key(sessionId, "log"), this.key(sessionId, "seq"), this.key(sessionId, "lease")];
    await this.cmd.awDelete(...keys, this.key(sessionId, "events"), this.publishCommand);
  }

  acquireLease(sessionId: string, ttlMs: number): Promise<string> {
    return this.cmd.awAcquire(this.key(sessionId, "lease"), this.nodeId, ttlMs);
  }

  async renewLeases(sessionIds: readonly string[], ttlMs: number): Promise<string[]> {
    const results = await Promise.all(sessionIds.map((id) => this.cmd.awRenew(this.key(id, "lease"), this.key(id, "meta"), this.nodeId, ttlMs, ttlMs * 20 + 3_600_000)));
    return sessionIds.filter((_, i) => results[i] !== 1);
  }

  async releaseLease(sessionId: string, holder = this.nodeId): Promise<void> {
    await this.cmd.awRelease(this.key(sessionId, "lease"), holder);
  }

  leaseHolder(sessionId: string): Promise<string | null> {
    return this.cmd.get(this.key(sessionId, "lease"));
  }

  async heartbeat(ttlMs: number): Promise<void> {
    if (ttlMs > 0) await this.cmd.set(this.aliveKey(this.nodeId), this.incarnation, "PX", ttlMs);
    else await this.cmd.del(this.aliveKey(this.nodeId));
  }

  /** One GET per node, sent together: on a Redis Cluster the keys sit on different shards. */
  nodeIncarnations(nodeIds: readonly string[]): Promise<(string | null)[]> {
    return Promise.all(nodeIds.map((id) => this.cmd.get(this.aliveKey(id))));
  }

  async append(sessionId: string, events: readonly StoredEvent[], limits: LogLimits, force = false): Promise<AppendResult> {
    const first = events[0];
    if (!first) return { ok: true };
    const [status, last] = await this.cmd.awAppend(
      this.key(sessionId, "lease"),
      this.key(sessionId, "log"),
      this.key(sessionId, "seq"),
      this.nodeId,
      first.seq,
      limits.maxEvents,
      limits.ttlMs,
      this.key(sessionId, "events"),
      force ? "1" : "0",
      this.publishCommand,
      ...events.map((e) => e.frame),
    );
    if (status === -1) return { ok: false, reason: "not_owner" };
    if (status === -2) return { ok: false, reason: "seq_mismatch", lastSeq: Number(last) };
    return { ok: true };
  }

  async read(sessionId: string, afterSeq: number, limit: number): Promise<ReadResult> {
    const out = await this.cmd.awRead(this.key(sessionId, "log"), this.key(sessionId, "seq"), afterSeq, limit);
    if (Number(out[0]) !== 1) return { ok: false, reason: "trimmed" };
    const events: StoredEvent[] = [];
    for (let i = 1; i + 1 < out.length; i += 2) events.push({ seq: Number(out[i]), frame: String(out[i + 1]) });
    return { ok: true, events };
  }

  async lastSeq(sessionId: string): Promise<number> {
    return Number((await this.cmd.get(this.key(sessionId, "seq"))) ?? 0);
  }

  async subscribe(sessionId: string, listener: SessionListener): Promise<() => Promise<void>> {
    const channel = this.key(sessionId, "events");
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
      if (this.ssub) {
        if (this.ssub.status === "ready") await this.ssub.ssubscribe(channel);
      } else if (this.sub.status === "ready") await this.sub.subscribe(channel);
    }
    set.add(listener);
    return async () => {
      set.delete(listener);
      if (set.size === 0 && this.channels.get(channel) === set) {
        this.channels.delete(channel);
        if (this.ssub) {
          if (this.ssub.status === "ready") await this.ssub.sunsubscribe(channel).catch(() => {});
        } else if (this.sub.status === "ready") await this.sub.unsubscribe(channel).catch(() => {});
      }
    };
  }

  request(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<unknown> {
    if (this.cmd.status !== "ready") return Promise.reject(new BrokerUnavailable(`request ${request.kind}`));
    const id = randomBytes(8).toString("base64url");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BrokerTimeout(`request ${request.kind} to ${nodeId}`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const envelope: Envelope = { id, from: this.nodeId, request };
      this.cmd.publish(this.nodeChannel(nodeId), JSON.stringify(envelope)).then(
        (receivers) => {
          // One Redis counts every subscriber: none means the node is gone (it left or died), and
          // waiting out the timeout would only delay the takeover. A Redis Cluster counts only the
          // subscribers of the shard that took the PUBLISH, so there a zero proves nothing.
          if (receivers > 0 || this.options.clusterNodes?.length || !this.pending.delete(id)) return;
          clearTimeout(timer);
          reject(new BrokerTimeout(`request ${request.kind} to ${nodeId}: no such node listening`));
        },
        (err: Error) => {
          clearTimeout(timer);
          this.pending.delete(id);
          reject(new BrokerUnavailable(`request ${request.kind}: ${err.message}`));
        },
      );
    });
  }

  onRequest(handler: (request: NodeRequest) => Promise<unknown>): void {
    this.handler = handler;
  }

  onReconnect(listener: () => void): void {
    let connectedBefore = this.cmd.status === "ready";
    this.cmd.on("ready", () => {
      if (connectedBefore) listener();
      connectedBefore = true;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probeTimer);
    clearInterval(this.healthTimer);
    this.quotas?.close();
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new BrokerUnavailable("broker closed"));
    }
    this.pending.clear();
    this.sub.disconnect();
    this.ssub?.disconnect();
    this.cmd.disconnect();
  }

  /** After a (re)connect the subscriber link has lost its subscriptions: take them all again. */
  private async resubscribe(): Promise<void> {
    try {
      const sessionChannels = this.ssub ? [] : [...this.channels.keys()];
      await this.sub.subscribe(this.nodeChannel(this.nodeId), ...sessionChannels);
      this.pubsubAlive = true;
      this.lastProbeSeen = Date.now();
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, "redis resubscribe failed");
    }
  }

  private async resubscribeSharded(): Promise<void> {
    // One command per channel: shard channels of different slots live on different nodes.
    for (const channel of this.channels.keys()) {
      await this.ssub?.ssubscribe(channel).catch((err: Error) => this.options.logger.warn({ err: err.message }, "redis sharded resubscribe failed"));
    }
  }

  /** A link can look connected yet deliver nothing (a proxy or NAT dropped it): send ourselves a probe. */
  private probe(): void {
    if (this.closed) return;
    const interval = this.options.probeIntervalMs ?? 2000;
    if (this.pubsubAlive && Date.now() - this.lastProbeSeen > interval * 2.5) {
      this.options.logger.warn({}, "redis subscriber link is silent: reconnecting it");
      this.pubsubAlive = false;
      this.sub.disconnect(true);
      return;
    }
    if (this.cmd.status !== "ready") return;
    const envelope: Envelope = { id: "probe", from: this.nodeId, probe: true };
    this.cmd.publish(this.nodeChannel(this.nodeId), JSON.stringify(envelope)).catch(() => {});
  }

  private dispatch(channel: string, payload: string): void {
    const handlers = this.channels.get(channel);
    if (handlers) {
      if (payload === DELETED_NOTICE) {
        for (const handler of handlers) handler.deleted();
        return;
      }
      const newline = payload.indexOf("\n");
      const first = Number(payload.slice(0, newline));
      const frames = payload.slice(newline + 1).split("\n");
      const events = frames.map((frame, i) => ({ seq: first + i, frame }));
      for (const handler of handlers) handler.events(events);
      return;
    }
    if (channel === this.nodeChannel(this.nodeId)) this.onNodeMessage(JSON.parse(payload) as Envelope);
  }

  private onNodeMessage(envelope: Envelope): void {
    if (envelope.probe) {
      this.lastProbeSeen = Date.now();
      this.pubsubAlive = true;
      return;
    }
    if (envelope.request) {
      const answer = (body: Partial<Envelope>) =>
        this.cmd.publish(this.nodeChannel(envelope.from), JSON.stringify({ id: envelope.id, from: this.nodeId, ...body })).catch(() => {});
      const handler = this.handler;
      if (!handler) return void answer({ error: "no handler" });
      handler(envelope.request).then(
        (reply) => answer({ reply }),
        (err: Error) => answer({ error: err.message }),
      );
      return;
    }
    const waiting = this.pending.get(envelope.id);
    if (!waiting) return;
    this.pending.delete(envelope.id);
    clearTimeout(waiting.timer);
    if (envelope.error !== undefined) waiting.reject(new Error(envelope.error));
    else waiting.resolve(envelope.reply);
  }
}

function parseHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(":");
  return { host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)) };
}
