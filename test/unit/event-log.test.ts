import { describe, expect, it } from "vitest";
import { ENTRY_OVERHEAD, EventLog } from "../../src/engine/event-log.js";

const UNBOUNDED = Number.POSITIVE_INFINITY;

const token = (text: string) => ({ type: "token" as const, turn: "t1", text });

describe("EventLog", () => {
  it("assigns gap-free seq numbers starting at 1 and serializes type and seq first", () => {
    const log = new EventLog({ maxEvents: 100, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    const seqs = ["a", "b", "c"].map((t) => log.append(token(t)).seq);
    expect(seqs).toEqual([1, 2, 3]);
    expect(log.lastSeq).toBe(3);
    expect(log.append(token("d")).frame).toBe('{"type":"token","seq":4,"turn":"t1","text":"d"}');
  });

  it("replays exactly the entries after a position", () => {
    const log = new EventLog({ maxEvents: 100, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    for (const t of "abcde") log.append(token(t));
    for (let after = 0; after <= 5; after++) {
      const replay = log.after(after);
      expect(replay.recovered).toBe(true);
      expect(replay.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5].filter((s) => s > after));
    }
  });

  it("drops by count and reports recovered: false for positions that fell out", () => {
    const log = new EventLog({ maxEvents: 3, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    for (const t of "abcdef") log.append(token(t));
    expect(log.firstSeq).toBe(4);
    expect(log.after(3).entries.map((e) => e.seq)).toEqual([4, 5, 6]);
    expect(log.after(2)).toEqual({ recovered: false, entries: [] });
    expect(log.after(7)).toEqual({ recovered: false, entries: [] });
  });

  it("drops by age", () => {
    let now = 1000;
    const log = new EventLog({ maxEvents: 100, maxAgeMs: 500, maxBytes: UNBOUNDED }, () => now);
    log.append(token("old"));
    now = 1400;
    log.append(token("new"));
    now = 1600;
    expect(log.after(0).recovered).toBe(false);
    expect(log.after(1).entries.map((e) => e.seq)).toEqual([2]);
    now = 2000;
    log.trim();
    expect(log.size).toBe(0);
    expect(log.firstSeq).toBe(3);
    expect(log.after(2)).toEqual({ recovered: true, entries: [] });
  });

  it("keeps memory bounded over many appends", () => {
    const log = new EventLog({ maxEvents: 10, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    for (let i = 0; i < 50_000; i++) log.append(token("x"));
    expect(log.size).toBe(10);
    expect(log.after(49_990).entries.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 49_991 + i));
  });
});

describe("EventLog pinning", () => {
  it("keeps entries the broker has not stored yet, up to twice the limit", () => {
    const log = new EventLog({ maxEvents: 3, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    log.pin(0);
    for (const t of "abcde") log.append(token(t));
    expect(log.size).toBe(5);
    for (const t of "fgh") log.append(token(t));
    expect(log.size).toBe(6);
    expect(log.firstSeq).toBe(3);
    log.pin(7);
    log.trim();
    expect(log.size).toBe(3);
    expect(log.firstSeq).toBe(6);
  });
});

describe("EventLog token storage", () => {
  /** Deltas that need escaping, span several code units, or are empty-looking. */
  const deltas = [" hello", '"quoted"', "\\", "\n", " 😀", "é", " ", "x".repeat(300), "\u2028"];

  it("reads back every frame exactly as it was first written, across trims and mixed events", () => {
    const log = new EventLog({ maxEvents: 700, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    const written = new Map<number, string>();
    for (let i = 0; i < 5000; i++) {
      const entry =
        i % 97 === 0
          ? log.append({ type: "progress", turn: `t${1 + (i >> 10)}`, stage: "s", message: `m${i}`, fraction: 0.5 })
          : log.append(token(deltas[i % deltas.length] as string));
      written.set(entry.seq, entry.frame);
      if (i % 333 === 0) {
        // Readers in the middle of writing (persister, replay) must see the tail exactly too.
        for (const e of log.after(log.firstSeq - 1).entries) expect(e.frame).toBe(written.get(e.seq));
      }
    }
    const replay = log.after(log.firstSeq - 1);
    expect(replay.entries.length).toBe(700);
    for (const e of replay.entries) {
      expect(e.frame).toBe(written.get(e.seq));
      expect(e.event).toEqual(JSON.parse(written.get(e.seq) as string));
      expect(e.type).toBe(e.event.type);
    }
  });

  it("stores tokens inserted from another node's log the same way", () => {
    const log = new EventLog({ maxEvents: 100, maxAgeMs: 60_000, maxBytes: UNBOUNDED });
    const frames = ['{"type":"token","seq":41,"turn":"t3","text":" a\\"b"}', '{"type":"turn_end","seq":42,"turn":"t3","status":"completed","reason":"stop"}'];
    for (const [i, frame] of frames.entries()) expect(log.insert(41 + i, frame, JSON.parse(frame))?.seq).toBe(41 + i);
    expect(log.after(40).entries.map((e) => e.frame)).toEqual(frames);
  });

  it("starts over cleanly after every event aged out", () => {
    let now = 1000;
    const log = new EventLog({ maxEvents: 100, maxAgeMs: 500, maxBytes: UNBOUNDED }, () => now);
    for (const t of ["a", "bc", "def"]) log.append(token(t));
    now = 2000;
    log.trim();
    expect(log.size).toBe(0);
    const frames = ["gh", "", "i"].map((t) => log.append(token(t)).frame);
    expect(log.after(3).entries.map((e) => e.frame)).toEqual(frames);
    expect(frames[0]).toBe('{"type":"token","seq":4,"turn":"t1","text":"gh"}');
  });

  it("is bounded by bytes: token text and frames count, the oldest go first, the count of bytes is exact", () => {
    const log = new EventLog({ maxEvents: 10_000, maxAgeMs: 60_000, maxBytes: 10 * (100 + ENTRY_OVERHEAD) });
    const text = "x".repeat(100);
    for (let i = 0; i < 25; i++) log.append(token(text));
    expect(log.size).toBe(10);
    expect(log.firstSeq).toBe(16);
    expect(log.bytes).toBe(10 * (100 + ENTRY_OVERHEAD));
    expect(log.after(15).entries.map((e) => e.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(log.after(14).recovered).toBe(false);
    // A non-token event counts its frame.
    const big = log.append({ type: "turn_start", turn: "t2", input: "y".repeat(500) });
    expect(log.bytes).toBeLessThanOrEqual(10 * (100 + ENTRY_OVERHEAD));
    expect(log.bytes).toBe(big.frame.length + ENTRY_OVERHEAD + (log.size - 1) * (100 + ENTRY_OVERHEAD));
    expect(log.after(log.firstSeq - 1).entries.every((e, i, all) => i === 0 || e.seq === (all[i - 1]?.seq ?? 0) + 1)).toBe(true);
  });

  it("keeps the newest entry even when it alone is over the byte budget", () => {
    const log = new EventLog({ maxEvents: 100, maxAgeMs: 60_000, maxBytes: 64 });
    log.append(token("a"));
    const entry = log.append({ type: "turn_start", turn: "t1", input: "z".repeat(1000) });
    expect(log.size).toBe(1);
    expect(log.after(1).entries.map((e) => e.frame)).toEqual([entry.frame]);
    expect(log.bytes).toBe(entry.frame.length + ENTRY_OVERHEAD);
  });

  it("keeps unstored entries up to twice the byte budget, then drops them too", () => {
    const log = new EventLog({ maxEvents: 10_000, maxAgeMs: 60_000, maxBytes: 4 * (10 + ENTRY_OVERHEAD) });
    log.pin(0);
    for (let i = 0; i < 6; i++) log.append(token("0123456789"));
    expect(log.size).toBe(6);
    for (let i = 0; i < 10; i++) log.append(token("0123456789"));
    expect(log.size).toBe(8);
    log.pin(Number.POSITIVE_INFINITY);
    log.trim();
    expect(log.size).toBe(4);
    expect(log.bytes).toBe(4 * (10 + ENTRY_OVERHEAD));
  });
});
