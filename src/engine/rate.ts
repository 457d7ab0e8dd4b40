// Token buckets for input floods and reconnect storms.

export class TokenBucket {
  private tokens: number;
  private updated: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.updated = now();
  }

  /** Takes one token; returns 0 when allowed, else the ms to wait until one is free. */
  take(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated) / 1000) * this.ratePerSec);
    this.updated = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) / this.ratePerSec) * 1000));
  }
}

/** One bucket per key (say, client IP), forgotten once full again so the map stays small. */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private lastSweep: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.lastSweep = now();
  }

  take(key: string): number {
    this.sweep();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.ratePerSec, this.burst, this.now);
      this.buckets.set(key, bucket);
    }
    return bucket.take();
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(): void {
    const now = this.now();
    // A bucket refills completely in burst/rate seconds; after that it holds no information.
    const refillMs = (this.burst / this.ratePerSec) * 1000;
    if (now - this.lastSweep < refillMs) return;
    this.lastSweep = now;
    this.buckets.clear();
  }
}
