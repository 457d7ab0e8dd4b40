// TurnQueue on its own: capacity, the round-robin-per-identity queue, positions, removal, limits, timeouts, drain.
import { afterEach, describe, expect, it, vi } from "vitest";
import { type QueuedTurn, TurnQueue, type TurnQueueOptions } from "../../src/engine/index.js";

/** A QueuedTurn recording what the queue told it, in one shared journal too. */
class FakeTurn implements QueuedTurn {
  started = 0;
  readonly moves: number[] = [];
  readonly etas: (number | undefined)[] = [];
  readonly expired: ("timeout" | "draining")[] = [];
  /** Positions reported before start() (the queue's last word before the turn ran). */
  movesBeforeStart: number[] | null = null;

  constructor(
    readonly identity: string,
    readonly name: string,
    private readonly journal: string[],
  ) {}

  start(): void {
    this.started++;
    this.movesBeforeStart = [...this.moves];
    this.journal.push(this.name);
  }

  moved(position: number, etaMs: number | undefined): void {
    this.moves.push(position);
    this.etas.push(etaMs);
  }

  expire(reason: "timeout" | "draining"): void {
    this.expired.push(reason);
  }
}

const queues: TurnQueue[] = [];
afterEach(() => {
  for (const q of queues.splice(0)) q.close();
  vi.useRealTimers();
});

function setup(options: Partial<TurnQueueOptions> = {}) {
  const queue = new TurnQueue({ capacity: 2, maxQueued: 1000, timeoutMs: 60_000, updateMs: 10, now: () => Date.now(), ...options });
  queues.push(queue);
  const journal: string[] = [];
  const make = (identity: string, name: string) => new FakeTurn(identity, name, journal);
  return { queue, journal, make };
}

describe("TurnQueue", () => {
  it("with capacity 2, requests start until full, then queue; finished() starts the next", () => {
    const { queue, journal, make } = setup();
    const [a, b, c, d] = [make("x", "a"), make("x", "b"), make("x", "c"), make("x", "d")];
    expect([queue.request(a), queue.request(b), queue.request(c), queue.request(d)]).toEqual(["started", "started", "queued", "queued"]);
    expect([queue.running, queue.queued]).toEqual([2, 2]);
    expect(journal).toEqual(["a", "b"]);
    // A started turn hears no position; a queued one hears its own at once.
    expect([a.moves, b.moves, c.moves, d.moves]).toEqual([[], [], [0], [1]]);
    queue.finished(100);
    expect(journal).toEqual(["a", "b", "c"]);
    expect([queue.running, queue.queued]).toEqual([2, 1]);
    // Told 0 ("next") while it waited: it starts without hearing 0 again.
    expect(c.moves).toEqual([0]);
    queue.finished(100);
    expect(journal).toEqual(["a", "b", "c", "d"]);
    expect([queue.running, queue.queued]).toEqual([2, 0]);
    queue.finished(100);
    queue.finished(100);
    expect([queue.running, queue.queued]).toEqual([0, 0]);
    expect([a, b, c, d].map((t) => t.started)).toEqual([1, 1, 1, 1]);
    // Once the queue is empty, a request starts at once again.
    expect(queue.request(make("x", "e"))).toBe("started");
  });

  it("a request waits behind queued turns even when a slot is free", () => {
    const { queue, journal, make } = setup({ capacity: 1 });
    queue.request(make("x", "a"));
    queue.request(make("y", "b"));
    expect(queue.queued).toBe(1);
    // The slot frees and goes to b at once; nothing can overtake it.
    queue.finished(5);
    expect(queue.request(make("z", "c"))).toBe("queued");
    expect(journal).toEqual(["a", "b"]);
  });

  it("is fair: A, B and C each request 10 with capacity 2; no identity gets more than one turn ahead once all are queued", () => {
    vi.useFakeTimers();
    const { queue, journal, make } = setup();
    const turns: FakeTurn[] = [];
    for (const id of ["A", "B", "C"]) for (let i = 1; i <= 10; i++) turns.push(make(id, `${id}${i}`));
    for (const t of turns) queue.request(t);
    // Each newcomer hears its place at once; the turns it moved back hear theirs at the next update.
    vi.advanceTimersByTime(10);
    expect([queue.running, queue.queued]).toEqual([2, 28]);
    expect(journal).toEqual(["A1", "A2"]);
    // Positions as the rotation would serve them, once all are queued: A3 B1 C1 A4 B2 C2 ...
    const byName = new Map(turns.map((t) => [t.name, t]));
    const at = (name: string) => (byName.get(name) as FakeTurn).moves.at(-1);
    expect(["A3", "B1", "C1", "A4", "B2", "C2", "A10", "B8", "C8", "B9", "C9", "B10", "C10"].map(at)).toEqual([0, 1, 2, 3, 4, 5, 21, 22, 23, 24, 25, 26, 27]);
    const afterAllQueued = new Map(turns.map((t) => [t, t.moves.length]));
    for (let i = 0; i < 30; i++) {
      queue.finished(50);
      // Lets the position updates after each start go out.
      vi.advanceTimersByTime(10);
    }
    const rounds: string[] = [];
    for (let r = 3; r <= 10; r++) rounds.push(`A${r}`, `B${r - 2}`, `C${r - 2}`);
    expect(journal).toEqual(["A1", "A2", ...rounds, "B9", "C9", "B10", "C10"]);
    // While all three still wait (the first 8 rounds), the queued starts per identity stay within one of each other.
    const counts = new Map([["A", 0], ["B", 0], ["C", 0]]);
    for (const name of journal.slice(2, 2 + 24)) {
      counts.set(name[0] as string, (counts.get(name[0] as string) ?? 0) + 1);
      const values = [...counts.values()];
      expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(1);
    }
    expect([...counts]).toEqual([["A", 8], ["B", 8], ["C", 8]]);
    // Each queued turn: positions non-increasing once all were queued, the last one before start() is 0.
    for (const t of turns.slice(2)) {
      const seen = t.moves.slice((afterAllQueued.get(t) as number) - 1);
      for (let i = 1; i < seen.length; i++) expect([t.name, seen[i]! <= seen[i - 1]!]).toEqual([t.name, true]);
      expect([t.name, t.movesBeforeStart?.at(-1)]).toEqual([t.name, 0]);
      expect(t.started).toBe(1);
    }
    expect([queue.running, queue.queued]).toEqual([0, 0]);
  });

  it("a later identity's turn goes ahead of a burst's second turn; each turn hears each change once, with an estimate", () => {
    vi.useFakeTimers();
    const { queue, make } = setup({ capacity: 1 });
    queue.request(make("A", "A1"));
    const [a2, a3, b1] = ["A2", "A3", "B1"].map((n) => make(n[0] as string, n)) as [FakeTurn, FakeTurn, FakeTurn];
    for (const t of [a2, a3, b1]) queue.request(t);
    // Rotation A2, B1, A3: B1 is told 1 at once; A3 moves back from 1 to 2 at the next update (by design: a burst waits behind others).
    expect([a2.moves, a3.moves, b1.moves]).toEqual([[0], [1], [1]]);
    vi.advanceTimersByTime(10);
    expect([a2.moves, a3.moves, b1.moves]).toEqual([[0], [1, 2], [1]]);
    queue.finished(40);
    // A2 starts at once (it was told 0 already); the others hear their new places after updateMs.
    expect([a2.moves, a3.moves, b1.moves]).toEqual([[0], [1, 2], [1]]);
    vi.advanceTimersByTime(9);
    expect([a3.moves, b1.moves]).toEqual([[1, 2], [1]]);
    vi.advanceTimersByTime(1);
    expect([a3.moves, b1.moves]).toEqual([[1, 2, 1], [1, 0]]);
    // The estimate is (position + 1) * averageRunMs / capacity, once a turn has ended.
    expect([a2.etas, a3.etas, b1.etas]).toEqual([[undefined], [undefined, undefined, 80], [undefined, 40]]);
    queue.finished(40);
    expect([b1.started, b1.moves.at(-1), a3.started]).toEqual([1, 0, 0]);
    vi.advanceTimersByTime(10);
    expect(a3.moves).toEqual([1, 2, 1, 0]);
    queue.finished(40);
    expect([a3.started, a3.moves]).toEqual([1, [1, 2, 1, 0]]);
  });

  it("remove() of a queued turn: it never starts, and the ones behind it move up", () => {
    vi.useFakeTimers();
    const { queue, journal, make } = setup({ capacity: 1 });
    queue.request(make("x", "run"));
    const [a, b, c] = [make("x", "a"), make("x", "b"), make("x", "c")];
    for (const t of [a, b, c]) queue.request(t);
    expect([a.moves, b.moves, c.moves]).toEqual([[0], [1], [2]]);
    expect(queue.remove(b)).toBe(true);
    expect(queue.queued).toBe(2);
    expect(queue.remove(b)).toBe(false);
    vi.advanceTimersByTime(10);
    expect([a.moves, b.moves, c.moves]).toEqual([[0], [1], [2, 1]]);
    queue.finished(1);
    queue.finished(1);
    queue.finished(1);
    expect(journal).toEqual(["run", "a", "c"]);
    expect(b.started).toBe(0);
    expect(b.expired).toEqual([]);
    // A turn that is not waiting (the running one) cannot be removed.
    expect(queue.remove(a)).toBe(false);
  });

  it("remove() of an identity's last waiting turn keeps the rotation on the others", () => {
    const { queue, journal, make } = setup({ capacity: 1 });
    queue.request(make("A", "A1"));
    const turns = ["A2", "B1", "C1", "A3", "C2"].map((n) => make(n[0] as string, n));
    for (const t of turns) queue.request(t);
    queue.finished(1); // A2 starts; B is next
    expect(queue.remove(turns[1] as FakeTurn)).toBe(true); // B1: B leaves the rotation
    for (let i = 0; i < 4; i++) queue.finished(1);
    expect(journal).toEqual(["A1", "A2", "C1", "A3", "C2"]);
  });

  it("maxQueued: past it request returns full (changing nothing) and canAccept() is false", () => {
    const { queue, journal, make } = setup({ capacity: 1, maxQueued: 2 });
    expect(queue.canAccept()).toBe(true);
    expect(queue.request(make("x", "a"))).toBe("started");
    expect(queue.canAccept()).toBe(true);
    const b = make("y", "b");
    expect(queue.request(b)).toBe("queued");
    expect(queue.request(make("z", "c"))).toBe("queued");
    expect(queue.canAccept()).toBe(false);
    const d = make("w", "d");
    expect(queue.request(d)).toBe("full");
    expect([queue.running, queue.queued]).toEqual([1, 2]);
    expect([d.moves, d.started, d.expired]).toEqual([[], 0, []]);
    // Nothing has ended yet: wait a second.
    expect(queue.retryAfterMs()).toBe(1000);
    queue.finished(3000);
    expect(queue.canAccept()).toBe(true);
    expect(queue.retryAfterMs()).toBe(3000);
    expect(journal).toEqual(["a", "b"]);
    expect(queue.request(d)).toBe("queued");
    expect(queue.canAccept()).toBe(false);
  });

  it("maxQueued 0: only a free slot takes a turn", () => {
    const { queue, make } = setup({ capacity: 1, maxQueued: 0 });
    expect(queue.request(make("x", "a"))).toBe("started");
    expect(queue.canAccept()).toBe(false);
    expect(queue.request(make("x", "b"))).toBe("full");
    queue.finished(1);
    expect(queue.canAccept()).toBe(true);
  });

  it("a turn that waits longer than timeoutMs gets expire('timeout') and never starts", () => {
    vi.useFakeTimers();
    const { queue, journal, make } = setup({ capacity: 1, timeoutMs: 400 });
    queue.request(make("x", "run"));
    const early = make("x", "early");
    queue.request(early);
    vi.advanceTimersByTime(200);
    const late = make("y", "late");
    queue.request(late);
    // The sweep runs every timeoutMs / 4 = 100 ms: "early" is past its deadline at 400 ms.
    vi.advanceTimersByTime(199);
    expect(early.expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect([early.expired, late.expired]).toEqual([["timeout"], []]);
    expect(queue.queued).toBe(1);
    vi.advanceTimersByTime(200);
    expect([early.expired, late.expired]).toEqual([["timeout"], ["timeout"]]);
    expect(queue.queued).toBe(0);
    queue.finished(10);
    expect(journal).toEqual(["run"]);
    expect([early.started, late.started]).toEqual([0, 0]);
    // Expired once each, whatever time passes later.
    vi.advanceTimersByTime(5000);
    expect([early.expired, late.expired]).toEqual([["timeout"], ["timeout"]]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("drain() expires every waiting turn with 'draining' and starts none; running turns go on", () => {
    const { queue, journal, make } = setup({ capacity: 2 });
    const running = [make("A", "r1"), make("B", "r2")];
    const waiting = ["A", "B", "C", "A", "C"].map((id, i) => make(id, `w${i}`));
    for (const t of [...running, ...waiting]) queue.request(t);
    queue.drain();
    expect(waiting.map((t) => t.expired)).toEqual(waiting.map(() => ["draining"]));
    expect(running.map((t) => t.expired)).toEqual([[], []]);
    expect([queue.running, queue.queued]).toEqual([2, 0]);
    queue.finished(1);
    queue.finished(1);
    expect(journal).toEqual(["r1", "r2"]);
    expect(waiting.map((t) => t.started)).toEqual([0, 0, 0, 0, 0]);
  });

  it("whenIdle() resolves after the last running turn finishes, not before", async () => {
    const { queue, make } = setup({ capacity: 2 });
    await expect(queue.whenIdle()).resolves.toBeUndefined();
    for (const n of ["a", "b", "c"]) queue.request(make("x", n));
    let idle = false;
    const waited = queue.whenIdle().then(() => {
      idle = true;
    });
    queue.finished(1); // c starts
    await Promise.resolve();
    expect(idle).toBe(false);
    queue.finished(1);
    await Promise.resolve();
    expect([idle, queue.running]).toEqual([false, 1]);
    queue.finished(1);
    await waited;
    expect([idle, queue.running]).toEqual([true, 0]);
  });
});
