// Per-identity quotas shared by every node through Redis: held counts per node incarnation, fixed windows as counters.
import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "../logger.js";
import { type HeldKind, HELD_RETRY_MS, type QuotaAnswer, type QuotaRequest, type QuotaStore, WINDOW_MS, type WindowKind, windowIndex, windowRemainingMs } from "../engine/quota.js";

/**
 * KEYS: held hash, take window, check window 1, check window 2 (all of one identity: one slot).
 * ARGV: holdKind ('' for none), holdLimit, incarnation, takeLimit, takeAmount, takeTtlMs, check1Limit, check2Limit, heldTtlMs,
 * startedSince, live incarnations...
 * Held counts live in one hash, a field per kind and node incarnation (`<start ms>-<random>`). A field counts when
 * its incarnation was live at the caller's last look at the registry, or started since (a node that joined
 * meanwhile): a node that died holds nothing. Returns 0 when granted, else which part refused: 1 hold, 2 take, 3/4 a check.
 */
export const QUOTA_ADMIT = `
local kind = ARGV[1]
if kind ~= '' and tonumber(ARGV[2]) > 0 then
  local live = {}
  for i = 11, #ARGV do live[ARGV[i]] = true end
  local since = tonumber(ARGV[10])
  local prefix = kind .. ':'
  local fields = redis.call('HGETALL', KEYS[1])
  local held = 0
  for i = 1, #fields, 2 do
    local f = fields[i]
    if string.sub(f, 1, #prefix) == prefix then
      local incarnation = string.sub(f, #prefix + 1)
      local started = tonumber(string.match(incarnation, '^(%d+)-') or '0')
      if live[incarnation] or started >= since then held = held + tonumber(fields[i + 1]) end
    end
  end
  if held >= tonumber(ARGV[2]) then return 1 end
end
if tonumber(ARGV[7]) > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[7]) then return 3 end
if tonumber(ARGV[8]) > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[8]) then return 4 end
local amount = tonumber(ARGV[5])
if amount > 0 then
  if tonumber(ARGV[4]) > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') + amount > tonumber(ARGV[4]) then return 2 end
  redis.call('INCRBY', KEYS[2], amount)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
if kind ~= '' then
  redis.call('HINCRBY', KEYS[1], kind .. ':' .. ARGV[3], 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
end
return 0
`;

type Client = (Redis | Cluster) & { awQuotaAdmit(...args: (string | number)[]): Promise<number> };

export interface RedisQuotaOptions {
  prefix: string;
  logger: Logger;
  /** How often the node re-registers as live and learns who else is (ms). @default 2000 */
  refreshMs?: number;
  /** A store answer slower than this is an error (fail closed, retryable). @default 1000 */
  timeoutMs?: number;
}

/** Held counts expire this long after an identity's last admission (dead nodes' fields go with them). */
const HELD_TTL_MS = 86_400_000;

export class RedisQuotaStore implements QuotaStore {
  /** This process: a restarted node is a new incarnation, so nothing its predecessor held counts. */
  readonly incarnation = `${Date.now()}-${randomBytes(4).toString("hex")}`;
  private live: string[] = [this.incarnation];
  /** When `live` was last read from the registry: incarnations that started since count too. */
  private liveAt = 0;
  /** What this incarnation holds, per identity: rewritten to Redis exactly where an update failed. */
  private readonly own = new Map<string, Record<HeldKind, number>>();
  private readonly dirty = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private readonly refreshMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly client: Redis | Cluster,
    private readonly options: RedisQuotaOptions,
  ) {
    client.defineCommand("awQuotaAdmit", { lua: QUOTA_ADMIT, numberOfKeys: 4 });
    this.refreshMs = options.refreshMs ?? 2000;
    this.timeoutMs = options.timeoutMs ?? 1000;
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  private get cmd(): Client {
    return this.client as Client;
  }

  private get registry(): string {
    return `${this.options.prefix}{quota}:nodes`;
  }

  private key(identity: string, part: string): string {
    return `${this.options.prefix}q:{${identity}}:${part}`;
  }

  start(): Promise<void> {
    return this.refresh();
  }

  /** Registers this incarnation and learns the live ones; resolves once done (or failed). */
  async refresh(): Promise<void> {
    const now = Date.now();
    try {
      const replies = await this.cmd
        .multi()
        .zadd(this.registry, now + 3 * this.refreshMs, this.incarnation)
        .zremrangebyscore(this.registry, "-inf", now)
        .zrange(this.registry, 0, -1)
        .exec();
      const members = replies?.[2]?.[1] as string[] | undefined;
      if (members) {
        this.live = members.includes(this.incarnation) ? members : [...members, this.incarnation];
        // Registered before the read: a node that started before `now` minus a refresh is in the list, or dead.
        this.liveAt = now - this.refreshMs;
      }
      for (const identity of [...this.dirty]) await this.rewrite(identity);
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, "quota registry not refreshed");
    }
  }

  admit(identity: string, request: QuotaRequest, now: number): Promise<QuotaAnswer> {
    const { hold, take, check = [] } = request;
    const windowKey = (kind: WindowKind | undefined) => (kind ? this.key(identity, `w:${kind}:${windowIndex(kind, now)}`) : this.key(identity, "w:none"));
    const c1 = check[0];
    const c2 = check[1];
    const args: (string | number)[] = [
      this.key(identity, "held"),
      windowKey(take?.kind),
      windowKey(c1?.kind),
      windowKey(c2?.kind),
      hold?.kind ?? "",
      hold?.limit ?? 0,
      this.incarnation,
      take?.limit ?? 0,
      take?.amount ?? 0,
      take ? WINDOW_MS[take.kind] : 0,
      c1?.limit ?? 0,
      c2?.limit ?? 0,
      HELD_TTL_MS,
      this.liveAt,
      ...this.live,
    ];
    const answer = withTimeout(this.cmd.awQuotaAdmit(...args), this.timeoutMs);
    // An answer that timed out may still have counted the hold: the next refresh writes the exact count back.
    if (hold) answer.catch(() => this.dirty.add(identity));
    return answer.then((refused): QuotaAnswer => {
      if (refused === 0) {
        if (hold) this.count(identity, hold.kind, 1);
        return { ok: true };
      }
      if (refused === 1 && hold) return { ok: false, limit: hold.kind, retryAfterMs: HELD_RETRY_MS[hold.kind] };
      const kind = (refused === 2 ? take?.kind : refused === 3 ? c1?.kind : c2?.kind) as WindowKind;
      return { ok: false, limit: kind, retryAfterMs: windowRemainingMs(kind, now) };
    });
  }

  release(identity: string, kind: HeldKind): void {
    this.count(identity, kind, -1);
    this.send(identity, kind, -1);
  }

  adopt(identity: string, kind: HeldKind): void {
    this.count(identity, kind, 1);
    this.send(identity, kind, 1);
  }

  add(identity: string, kind: WindowKind, amount: number, now: number): void {
    if (amount <= 0) return;
    const key = this.key(identity, `w:${kind}:${windowIndex(kind, now)}`);
    this.cmd
      .multi()
      .incrby(key, amount)
      .pexpire(key, WINDOW_MS[kind])
      .exec()
      .catch((err: Error) => this.options.logger.warn({ err: err.message }, "spent tokens not counted in the shared quota"));
  }

  sweep(): void {
    for (const [identity, held] of this.own) {
      if (held.sessions === 0 && held.connections === 0 && held.turns === 0 && !this.dirty.has(identity)) this.own.delete(identity);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }

  private count(identity: string, kind: HeldKind, delta: number): void {
    let held = this.own.get(identity);
    if (!held) {
      held = { sessions: 0, connections: 0, turns: 0 };
      this.own.set(identity, held);
    }
    held[kind] = Math.max(0, held[kind] + delta);
  }

  private send(identity: string, kind: HeldKind, delta: number): void {
    this.cmd.hincrby(this.key(identity, "held"), `${kind}:${this.incarnation}`, delta).catch(() => this.dirty.add(identity));
  }

  /** Writes this incarnation's exact counts for an identity whose update failed. */
  private async rewrite(identity: string): Promise<void> {
    const held = this.own.get(identity) ?? { sessions: 0, connections: 0, turns: 0 };
    const key = this.key(identity, "held");
    await this.cmd
      .multi()
      .hset(key, `sessions:${this.incarnation}`, held.sessions, `connections:${this.incarnation}`, held.connections, `turns:${this.incarnation}`, held.turns)
      .pexpire(key, HELD_TTL_MS)
      .exec();
    this.dirty.delete(identity);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the quota store did not answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
