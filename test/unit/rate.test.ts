import { describe, expect, it } from "vitest";
import { KeyedRateLimiter, TokenBucket } from "../../src/engine/rate.js";

/** A hand-driven clock in ms: every test moves time itself. */
function clock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** Calls `take(key)` every `everyMs` from the clock's time until `untilMs`; returns the times admitted. */
function attempt(limiter: KeyedRateLimiter, c: { t: number }, key: string, everyMs: number, untilMs: number): number[] {
  const admitted: number[] = [];
  for (; c.t < untilMs; c.t += everyMs) if (limiter.take(key) === 0) admitted.push(c.t);
  return admitted;
}

describe("TokenBucket", () => {
  it("starts full, then refills continuously at the rate", () => {
    const c = clock();
    const bucket = new TokenBucket(20, 3, c.now);
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([0, 0, 0]);
    expect(bucket.take()).toBe(50);
    c.t = 25;
    expect(bucket.take()).toBe(25);
    c.t = 50;
    expect(bucket.take()).toBe(0);
    c.t = 1000;
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([0, 0, 0, 50]);
  });

  it("returns the exact wait: a take at now + wait succeeds, at now + wait - 1 it does not", () => {
    for (const rate of [1, 3, 7, 20, 50, 999, 0.5, 0.3, 2.7, 1 / 3]) {
      for (const burst of [1, 2, 5]) {
        for (const start of [0, 1_795_503_024_064]) {
          const c = clock(start);
          const bucket = new TokenBucket(rate, burst, c.now);
          // Uneven steps leave fractional credit behind, the case a sloppy ceil gets wrong.
          for (const step of [0, 1, 13, 7, 0, 101, 2, 3, 0, 57]) {
            c.t += step;
            while (bucket.take() === 0);
            const wait = bucket.retryAfterMs();
            expect(wait, `rate ${rate} burst ${burst}`).toBeGreaterThan(0);
            expect(bucket.take()).toBe(wait);
            const at = c.t;
            if (wait > 1) {
              c.t = at + wait - 1;
              expect(bucket.take(), `rate ${rate} burst ${burst} at wait - 1`).toBe(1);
            }
            c.t = at + wait;
            expect(bucket.take(), `rate ${rate} burst ${burst} at wait`).toBe(0);
          }
        }
      }
    }
  });

  it("takes nothing when it refuses, and never hands out an interval twice when the clock steps back", () => {
    const c = clock(1000);
    const bucket = new TokenBucket(10, 1, c.now);
    expect(bucket.take()).toBe(0);
    for (let i = 0; i < 50; i++) expect(bucket.take()).toBe(100);
    c.t = 500;
    expect(bucket.take()).toBe(600);
    c.t = 1100;
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBe(100);
  });

  it("refuses limits that could never admit anything", () => {
    expect(() => new TokenBucket(0, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0.5)).toThrow(RangeError);
    expect(() => new KeyedRateLimiter(-1, 10)).toThrow(RangeError);
    expect(() => new KeyedRateLimiter(1, Number.NaN)).toThrow(RangeError);
  });
});

describe("KeyedRateLimiter", () => {
  it("holds a client trying 100 times/s for 10 s at rate 20 to burst + 20/s", () => {
    const c = clock();
    const limiter = new KeyedRateLimiter(20, 100, c.now);
    const admitted = attempt(limiter, c, "203.0.113.7", 10, 10_000);
    // 124 in the burst (it refills while it drains), then one every 50 ms from 1250 to 9950.
    expect(admitted.length).toBe(299);
    expect(Math.abs(admitted.length - (100 + 20 * 10))).toBeLessThanOrEqual(1);
    // Past the burst the rate is exactly the configured one, across the sweeps at 5 s and 10 s.
    expect(admitted.filter((t) => t >= 2000).length).toBe(160);
    expect(admitted.filter((t) => t >= 2000 && t < 2050)).toEqual([2000]);
  });

  it("never refills a live bucket in a sweep, across many sweep periods", () => {
    const c = clock();
    const limiter = new KeyedRateLimiter(20, 100, c.now);
    for (let i = 0; i < 100; i++) expect(limiter.take("a")).toBe(0);
    // Sixty seconds is twelve sweep periods; every ms an attempt, one in fifty admitted.
    c.t = 1;
    const admitted = attempt(limiter, c, "a", 1, 60_001);
    expect(admitted.length).toBe(1200);
    expect(admitted.slice(0, 3)).toEqual([50, 100, 150]);
    expect(admitted.at(-1)).toBe(60_000);
    expect(limiter.size).toBe(1);
  });

  it("forgets idle buckets at the first sweep after they are full, and keeps the ones still refilling", () => {
    const c = clock();
    const limiter = new KeyedRateLimiter(20, 100, c.now);
    for (let i = 0; i < 1000; i++) limiter.take(`idle-${i}`);
    for (let i = 0; i < 100; i++) limiter.take("busy");
    // Refilling, but unused since t=0: 4.99 s short of full at the sweep.
    for (let i = 0; i < 100; i++) limiter.take("drained");
    c.t = 10;
    attempt(limiter, c, "busy", 10, 5000);
    expect(limiter.size).toBe(1002);
    c.t = 4999;
    expect(limiter.take("busy")).toBeGreaterThan(0);
    expect(limiter.size).toBe(1002);
    c.t = 5000;
    expect(limiter.take("busy")).toBe(0);
    expect(limiter.size).toBe(1);
    expect(limiter.retryAfterMs("busy")).toBe(50);
    // "drained" was full exactly at 5000 and went with the idle ones: a fresh bucket answers the same.
    expect(limiter.retryAfterMs("drained")).toBe(0);
  });

  it("keeps a bucket that is not yet full at the sweep, with its deficit", () => {
    const c = clock();
    const limiter = new KeyedRateLimiter(1, 10, c.now);
    for (let i = 0; i < 10; i++) limiter.take("slow");
    c.t = 5000;
    limiter.take("slow");
    limiter.take("other");
    // The sweep at 10 s: "other" was full at 6 s and goes; "slow" holds 9 of 10 until 11 s and stays.
    c.t = 10_000;
    limiter.take("probe");
    expect(limiter.size).toBe(2);
    expect(limiter.retryAfterMs("other")).toBe(0);
    const answers = Array.from({ length: 10 }, () => limiter.take("slow"));
    expect(answers).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1000]);
  });

  it("stays within maxKeys under a spray of distinct keys, and the client it holds back stays held", () => {
    const c = clock();
    const limiter = new KeyedRateLimiter(1, 1, c.now);
    expect(limiter.take("attacker")).toBe(0);
    for (let i = 0; i < 120_000; i++) {
      limiter.take(`spoofed-${i}`);
      if (i % 1000 === 0) expect(limiter.take("attacker")).toBe(1000);
    }
    expect(limiter.size).toBe(100_000);
    expect(limiter.take("attacker")).toBe(1000);
    // The oldest went first: the newest sprayed key still holds its used token, the oldest is gone.
    expect(limiter.retryAfterMs("spoofed-119999")).toBe(1000);
    expect(limiter.retryAfterMs("spoofed-0")).toBe(0);
    expect(limiter.retryAfterMs("spoofed-20000")).toBe(0);
  });

  it("honours a smaller maxKeys", () => {
    const c = clock();
    const limiter = new KeyedRateLimiter(20, 100, c.now, { maxKeys: 1000 });
    for (let i = 0; i < 100_001; i++) limiter.take(`k${i}`);
    expect(limiter.size).toBe(1000);
  });
});
