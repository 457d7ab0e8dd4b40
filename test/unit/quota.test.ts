// LocalQuotaStore: held limits, epoch-aligned windows, all-or-nothing admission, sweeping; limitsWith and isUnlimited.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HELD_RETRY_MS, LocalQuotaStore, NO_LIMITS, type QuotaLimits, isUnlimited, limitsWith } from "../../src/engine/index.js";

const MINUTE = 60_000;
const DAY = 86_400_000;
/** Some minute well after the epoch: k = 28_000_000 (a day in 2023). */
const K = 28_000_000;
const minuteStart = MINUTE * K;

const nothing = { sessions: 0, connections: 0, turns: 0, sessions_per_minute: 0, tokens_per_minute: 0, tokens_per_day: 0 };

describe("LocalQuotaStore: held kinds", () => {
  it.each([
    ["turns", 1000],
    ["sessions", 5000],
    ["connections", 1000],
  ] as const)("holds %s up to the limit, then refuses with its retry; release frees one", (kind, retryAfterMs) => {
    const store = new LocalQuotaStore();
    const req = { hold: { kind, limit: 3 } };
    expect([store.admit("a", req, 0), store.admit("a", req, 0), store.admit("a", req, 0)]).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(store.usage("a", 0)[kind]).toBe(3);
    expect(store.admit("a", req, 0)).toEqual({ ok: false, limit: kind, retryAfterMs });
    expect(retryAfterMs).toBe(HELD_RETRY_MS[kind]);
    // The refusal counted nothing.
    expect(store.usage("a", 0)[kind]).toBe(3);
    store.release("a", kind);
    expect(store.usage("a", 0)[kind]).toBe(2);
    expect(store.admit("a", req, 0)).toEqual({ ok: true });
    expect(store.admit("a", req, 0)).toEqual({ ok: false, limit: kind, retryAfterMs });
    expect(store.usage("a", 0)).toEqual({ ...nothing, [kind]: 3 });
  });

  it("release never goes below 0, and of an unknown identity does nothing", () => {
    const store = new LocalQuotaStore();
    store.release("nobody", "turns");
    expect(store.identities).toBe(0);
    expect(store.admit("a", { hold: { kind: "turns", limit: 1 } }, 0)).toEqual({ ok: true });
    store.release("a", "turns");
    store.release("a", "turns");
    expect(store.usage("a", 0).turns).toBe(0);
    expect(store.admit("a", { hold: { kind: "turns", limit: 1 } }, 0)).toEqual({ ok: true });
    expect(store.admit("a", { hold: { kind: "turns", limit: 1 } }, 0)).toMatchObject({ ok: false, limit: "turns" });
  });

  it("limit 0 means no limit, but the hold is still counted (its release will be)", () => {
    const store = new LocalQuotaStore();
    for (let i = 0; i < 50; i++) expect(store.admit("a", { hold: { kind: "sessions", limit: 0 } }, 0)).toEqual({ ok: true });
    expect(store.usage("a", 0).sessions).toBe(50);
    store.release("a", "sessions");
    expect(store.usage("a", 0).sessions).toBe(49);
  });

  it("adopt counts a unit without a check, even past the limit", () => {
    const store = new LocalQuotaStore();
    store.adopt("a", "sessions");
    store.adopt("a", "sessions");
    expect(store.usage("a", 0).sessions).toBe(2);
    expect(store.admit("a", { hold: { kind: "sessions", limit: 2 } }, 0)).toEqual({ ok: false, limit: "sessions", retryAfterMs: 5000 });
  });

  it("identities are independent", () => {
    const store = new LocalQuotaStore();
    const req = { hold: { kind: "turns" as const, limit: 1 } };
    expect(store.admit("a", req, 0)).toEqual({ ok: true });
    expect(store.admit("a", req, 0)).toEqual({ ok: false, limit: "turns", retryAfterMs: 1000 });
    expect(store.admit("b", req, 0)).toEqual({ ok: true });
    store.add("a", "tokens_per_day", 500, 0);
    expect(store.admit("b", { check: [{ kind: "tokens_per_day", limit: 100 }] }, 0)).toEqual({ ok: true });
    expect(store.admit("a", { check: [{ kind: "tokens_per_day", limit: 100 }] }, 0)).toMatchObject({ ok: false, limit: "tokens_per_day" });
    expect(store.usage("a", 0)).toEqual({ ...nothing, turns: 1, tokens_per_day: 500 });
    expect(store.usage("b", 0)).toEqual({ ...nothing, turns: 1 });
    expect(store.identities).toBe(2);
  });
});

describe("LocalQuotaStore: windows", () => {
  it("take of sessions_per_minute refuses past the limit, with the ms left in the epoch-aligned minute", () => {
    const store = new LocalQuotaStore();
    const req = { take: { kind: "sessions_per_minute" as const, limit: 2, amount: 1 } };
    const now = minuteStart + 15_000;
    expect(store.admit("a", req, now)).toEqual({ ok: true });
    expect(store.admit("a", req, now + 1000)).toEqual({ ok: true });
    expect(store.admit("a", req, now)).toEqual({ ok: false, limit: "sessions_per_minute", retryAfterMs: 45_000 });
    expect(store.admit("a", req, minuteStart + MINUTE - 1)).toEqual({ ok: false, limit: "sessions_per_minute", retryAfterMs: 1 });
    expect(store.usage("a", now).sessions_per_minute).toBe(2);
    // The next minute starts from zero.
    expect(store.usage("a", minuteStart + MINUTE).sessions_per_minute).toBe(0);
    expect(store.admit("a", req, minuteStart + MINUTE)).toEqual({ ok: true });
    expect(store.admit("a", req, minuteStart + MINUTE + 59_000)).toEqual({ ok: true });
    expect(store.admit("a", req, minuteStart + MINUTE + 59_000)).toEqual({ ok: false, limit: "sessions_per_minute", retryAfterMs: 1000 });
  });

  it("a take whose amount would pass the limit is refused even when the window is below it", () => {
    const store = new LocalQuotaStore();
    const now = minuteStart + 30_000;
    expect(store.admit("a", { take: { kind: "tokens_per_minute", limit: 10, amount: 7 } }, now)).toEqual({ ok: true });
    expect(store.admit("a", { take: { kind: "tokens_per_minute", limit: 10, amount: 4 } }, now)).toEqual({ ok: false, limit: "tokens_per_minute", retryAfterMs: 30_000 });
    expect(store.admit("a", { take: { kind: "tokens_per_minute", limit: 10, amount: 3 } }, now)).toEqual({ ok: true });
    expect(store.usage("a", now).tokens_per_minute).toBe(10);
  });

  it("tokens_per_day: add, then check refuses once count >= limit, with the ms to the next UTC midnight", () => {
    const store = new LocalQuotaStore();
    const midnight = Date.UTC(2024, 2, 10);
    expect(midnight % DAY).toBe(0);
    const req = { check: [{ kind: "tokens_per_day" as const, limit: 100 }] };
    const at = midnight + 10 * 3_600_000; // 10:00 UTC
    store.add("a", "tokens_per_day", 99, at);
    expect(store.admit("a", req, at)).toEqual({ ok: true });
    // A check takes nothing.
    expect(store.usage("a", at).tokens_per_day).toBe(99);
    store.add("a", "tokens_per_day", 1, at);
    expect(store.admit("a", req, at)).toEqual({ ok: false, limit: "tokens_per_day", retryAfterMs: 14 * 3_600_000 });
    expect(store.admit("a", req, midnight + DAY - 250)).toEqual({ ok: false, limit: "tokens_per_day", retryAfterMs: 250 });
    // The next UTC day starts from zero.
    expect(store.admit("a", req, midnight + DAY)).toEqual({ ok: true });
    expect(store.usage("a", midnight + DAY).tokens_per_day).toBe(0);
    // add of 0 or less counts nothing and makes no entry.
    store.add("z", "tokens_per_day", 0, at);
    store.add("z", "tokens_per_day", -5, at);
    expect(store.identities).toBe(1);
  });

  it("tokens_per_minute and tokens_per_day are separate windows; the first refused check names its limit", () => {
    const store = new LocalQuotaStore();
    const now = Date.UTC(2024, 2, 10) + 30_000;
    store.add("a", "tokens_per_minute", 50, now);
    const req = {
      check: [
        { kind: "tokens_per_minute" as const, limit: 50 },
        { kind: "tokens_per_day" as const, limit: 1000 },
      ],
    };
    expect(store.admit("a", req, now)).toEqual({ ok: false, limit: "tokens_per_minute", retryAfterMs: 30_000 });
    expect(store.admit("a", req, now + 30_000)).toEqual({ ok: true });
    expect(store.usage("a", now)).toEqual({ ...nothing, tokens_per_minute: 50 });
  });

  it("limit 0 in a take or check means no limit (and an all-unlimited request without hold makes no entry)", () => {
    const store = new LocalQuotaStore();
    store.add("a", "tokens_per_day", 1_000_000, 0);
    expect(store.admit("a", { check: [{ kind: "tokens_per_day", limit: 0 }] }, 0)).toEqual({ ok: true });
    expect(store.admit("b", { take: { kind: "sessions_per_minute", limit: 0, amount: 1 } }, 0)).toEqual({ ok: true });
    expect(store.identities).toBe(1);
  });
});

describe("LocalQuotaStore: all or nothing", () => {
  it("a hold and a take refused by the take holds nothing and takes nothing", () => {
    const store = new LocalQuotaStore();
    const now = minuteStart + 15_000;
    const req = { hold: { kind: "sessions" as const, limit: 5 }, take: { kind: "sessions_per_minute" as const, limit: 1, amount: 1 } };
    expect(store.admit("a", req, now)).toEqual({ ok: true });
    expect(store.usage("a", now)).toEqual({ ...nothing, sessions: 1, sessions_per_minute: 1 });
    expect(store.admit("a", req, now)).toEqual({ ok: false, limit: "sessions_per_minute", retryAfterMs: 45_000 });
    expect(store.usage("a", now)).toEqual({ ...nothing, sessions: 1, sessions_per_minute: 1 });
  });

  it("a hold and a take refused by the hold takes nothing from the window", () => {
    const store = new LocalQuotaStore();
    const now = minuteStart;
    const req = { hold: { kind: "sessions" as const, limit: 1 }, take: { kind: "sessions_per_minute" as const, limit: 10, amount: 1 } };
    expect(store.admit("a", req, now)).toEqual({ ok: true });
    expect(store.admit("a", req, now)).toEqual({ ok: false, limit: "sessions", retryAfterMs: 5000 });
    expect(store.usage("a", now)).toEqual({ ...nothing, sessions: 1, sessions_per_minute: 1 });
  });

  it("a hold refused by a check holds nothing", () => {
    const store = new LocalQuotaStore();
    const now = Date.UTC(2024, 0, 1) + DAY / 2;
    store.add("a", "tokens_per_day", 100, now);
    const req = { hold: { kind: "turns" as const, limit: 5 }, check: [{ kind: "tokens_per_day" as const, limit: 100 }] };
    expect(store.admit("a", req, now)).toEqual({ ok: false, limit: "tokens_per_day", retryAfterMs: DAY / 2 });
    expect(store.usage("a", now)).toEqual({ ...nothing, tokens_per_day: 100 });
  });
});

describe("LocalQuotaStore: sweep", () => {
  it("forgets identities that hold nothing and have no current window, keeps the others", () => {
    const store = new LocalQuotaStore();
    const t0 = minuteStart + 1000;
    store.admit("holds", { hold: { kind: "connections", limit: 0 } }, t0);
    store.add("minute", "tokens_per_minute", 5, t0);
    store.add("day", "tokens_per_day", 5, t0);
    store.admit("released", { hold: { kind: "turns", limit: 3 } }, t0);
    store.release("released", "turns");
    expect(store.identities).toBe(4);
    store.sweep(t0);
    // "released" holds nothing and has no window.
    expect(store.identities).toBe(3);
    expect(store.usage("holds", t0).connections).toBe(1);
    // In the next minute the minute's window is over; the day's is not.
    store.sweep(minuteStart + MINUTE);
    expect(store.identities).toBe(2);
    expect(store.usage("day", minuteStart + MINUTE).tokens_per_day).toBe(5);
    // The next UTC day.
    const nextDay = (Math.floor(t0 / DAY) + 1) * DAY;
    store.sweep(nextDay);
    expect(store.identities).toBe(1);
    store.release("holds", "connections");
    store.sweep(nextDay);
    expect(store.identities).toBe(0);
  });
});

describe("limitsWith and isUnlimited", () => {
  const defaults: QuotaLimits = { sessions: 10, connections: 20, turns: 3, sessions_per_minute: 30, tokens_per_minute: 1000, tokens_per_day: 50_000 };

  it("overrides only the given keys, and leaves the defaults untouched", () => {
    const out = limitsWith(defaults, { turns: 1, tokens_per_day: 0 });
    expect(out).toEqual({ sessions: 10, connections: 20, turns: 1, sessions_per_minute: 30, tokens_per_minute: 1000, tokens_per_day: 0 });
    expect(defaults.turns).toBe(3);
    expect(limitsWith(defaults, undefined)).toBe(defaults);
    expect(limitsWith(defaults, {})).toEqual(defaults);
    // A key the limits do not have is not copied.
    expect(limitsWith(defaults, { bogus: 7 } as Partial<QuotaLimits>)).toEqual(defaults);
  });

  it("isUnlimited: true only when every limit is 0", () => {
    expect(isUnlimited(NO_LIMITS)).toBe(true);
    expect(isUnlimited({ ...NO_LIMITS })).toBe(true);
    expect(isUnlimited(defaults)).toBe(false);
    for (const key of Object.keys(NO_LIMITS) as (keyof QuotaLimits)[]) {
      expect([key, isUnlimited({ ...NO_LIMITS, [key]: 1 })]).toEqual([key, false]);
    }
  });
});

describe("LocalQuotaStore: property", () => {
  it("for any admit/release sequence with a hold limit L, the held count never exceeds L and equals grants minus releases", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.oneof(fc.constant("admit" as const), fc.constant("release" as const)), { maxLength: 60 }),
        (limit, ops) => {
          const store = new LocalQuotaStore();
          let expected = 0;
          for (const op of ops) {
            if (op === "admit") {
              const answer = store.admit("a", { hold: { kind: "turns", limit } }, 0);
              // Granted exactly when below the limit.
              expect(answer.ok).toBe(expected < limit);
              if (answer.ok) expected++;
              else expect(answer).toEqual({ ok: false, limit: "turns", retryAfterMs: 1000 });
            } else {
              store.release("a", "turns");
              expected = Math.max(0, expected - 1);
            }
            const held = store.usage("a", 0).turns;
            expect(held).toBeLessThanOrEqual(limit);
            expect(held).toBeGreaterThanOrEqual(0);
            expect(held).toBe(expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
