// Token buckets for input floods and reconnect storms.

/** Credit is kept in thousandths of a token, so a bucket refills by `ratePerSec` units per ms: exact for integer rates and clocks. */
const UNIT = 1000;

/** A burst below one token could never admit anything, and `waitFor` would search forever. */
function checkLimits(ratePerSec: number, burst: number): void {
  if (!(ratePerSec > 0 && Number.isFinite(ratePerSec))) throw new RangeError(`rate must be a positive number, got ${ratePerSec}`);
  if (!(burst >= 1 && Number.isFinite(burst))) throw new RangeError(`burst must be at least 1, got ${burst}`);
}

export class TokenBucket {
  private credit: number;
  private updated: number;
  private readonly cap: number;

  constructor(
    private readonly ratePerSec: number,
    burst: number,
    private readonly now: () => number = Date.now,
  ) {
    checkLimits(ratePerSec, burst);
    this.cap = burst * UNIT;
    this.credit = this.cap;
    this.updated = now();
  }

  /** Takes one token; returns 0 when allowed, else the ms to wait until one is free. A refusal changes nothing. */
  take(now: number = this.now()): number {
    const available = this.creditAt(now);
    if (available < UNIT) return this.waitFor(now, available);
    this.credit = available - UNIT;
    // A clock that stepped back must not hand out the same interval twice.
    this.updated = Math.max(this.updated, now);
    return 0;
  }

  /** What `take` would answer now, without taking: 0 when a token is free, else the ms until one is. */
  retryAfterMs(now: number = this.now()): number {
    const available = this.creditAt(now);
    return available < UNIT ? this.waitFor(now, available) : 0;
  }

  /** Full again: the bucket holds nothing a fresh one would not, so it may be forgotten. */
  isFull(now: number = this.now()): boolean {
    return this.creditAt(now) >= this.cap;
  }

  private creditAt(now: number): number {
    return Math.min(this.cap, this.credit + Math.max(0, now - this.updated) * this.ratePerSec);
  }

  /**
   * The smallest whole ms after which `take` succeeds. The ceil is checked against the very sum a later
   * `take` computes, so float rounding (fractional rates or clocks) cannot make it a millisecond off either way.
   */
  private waitFor(now: number, available: number): number {
    let wait = Math.max(1, Math.ceil((UNIT - available) / this.ratePerSec));
    while (this.creditAt(now + wait) < UNIT) wait++;
    while (wait > 1 && this.creditAt(now + wait - 1) >= UNIT) wait--;
    return wait;
  }
}

export interface KeyedRateLimiterOptions {
  /**
   * Buckets held at most; past it the least recently used one is dropped, so a spray of spoofed keys
   * costs bounded memory. @default 100_000
   */
  maxKeys?: number;
}

/**
 * One bucket per key (say, client IP). Buckets that are full again are forgotten, since a fresh bucket
 * would answer the same; one still refilling is kept however long ago it was made, so reconnecting in a
 * loop never earns a fresh burst.
 */
export class KeyedRateLimiter {
  /** Oldest first: Map keeps insertion order, and `take` re-inserts a bucket each time it refuses. */
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly maxKeys: number;
  /** A bucket refills completely in burst/rate seconds, so a sweep more often than that finds little new. */
  private readonly sweepMs: number;
  private lastSweep: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
    options: KeyedRateLimiterOptions = {},
  ) {
    checkLimits(ratePerSec, burst);
    this.maxKeys = Math.max(1, options.maxKeys ?? 100_000);
    this.sweepMs = (burst / ratePerSec) * 1000;
    this.lastSweep = now();
  }

  take(key: string): number {
    const now = this.now();
    this.sweep(now);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.ratePerSec, this.burst, this.now);
      if (this.buckets.size >= this.maxKeys) this.evictLeastRecent();
      this.buckets.set(key, bucket);
    }
    const waitMs = bucket.take(now);
    // A refused client moves to the back, so a spray of fresh keys cannot push it out while it keeps
    // trying. Only then: a delete and re-insert on every connect would churn the map's table (about
    // 0.15 KB of RSS per connection, measured) for clients that are not being held back.
    if (waitMs > 0) {
      this.buckets.delete(key);
      this.buckets.set(key, bucket);
    }
    return waitMs;
  }

  /** What `take(key)` would answer now, without taking. */
  retryAfterMs(key: string): number {
    return this.buckets.get(key)?.retryAfterMs() ?? 0;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Amortised: one pass at most once per refill period, dropping only buckets that are full by now. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.sweepMs) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(key);
  }

  /**
   * The oldest bucket (made or last refused longest ago) has had the longest to refill, and a client
   * being held back was refused recently, so it is not the one dropped: a flood of fresh keys only
   * pushes out idle ones and each other. O(1), unlike searching for the fullest.
   */
  private evictLeastRecent(): void {
    const oldest = this.buckets.keys().next();
    if (!oldest.done) this.buckets.delete(oldest.value);
  }
}

/**
 * A budget of bytes that refills continuously: `take(n)` spends n when the budget holds them.
 * Used for what a connection may have replayed; a cost above the capacity is clamped to it, so
 * one large but legitimate replay is never refused forever.
 */
export class ByteBudget {
  private available: number;
  private updated: number;

  constructor(
    private readonly capacity: number,
    private readonly refillPerSec: number,
    private readonly now: () => number = Date.now,
  ) {
    checkLimits(refillPerSec, capacity);
    this.available = capacity;
    this.updated = now();
  }

  /** Spends `bytes` and returns 0, or returns the ms until they are available (spending nothing). */
  take(bytes: number): number {
    const now = this.now();
    this.available = Math.min(this.capacity, this.available + (Math.max(0, now - this.updated) * this.refillPerSec) / 1000);
    this.updated = Math.max(this.updated, now);
    const cost = Math.min(bytes, this.capacity);
    if (cost <= this.available) {
      this.available -= cost;
      return 0;
    }
    return Math.max(1, Math.ceil(((cost - this.available) / this.refillPerSec) * 1000));
  }
}
