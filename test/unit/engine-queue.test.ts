// The engine's admission queue and per-identity quotas end to end: sessions of several identities, a fake agent the
// test finishes turn by turn, and each session's events as an attached client sees them.
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage } from "@agentwire/protocol";
import {
  type Agent,
  Engine,
  type EngineLimits,
  LocalQuotaStore,
  NO_LIMITS,
  type Principal,
  type QuotaLimits,
  type Session,
  type StepRequest,
  type StepResult,
  type StepSink,
} from "../../src/engine/index.js";
import { FakeSink } from "../helpers/fake-sink.js";

/** One agent step the test finishes by hand. */
interface HeldStep {
  request: StepRequest;
  sink: StepSink;
  signal: AbortSignal;
  done(usage?: [number, number]): void;
}

/** Records which sessions' turns reached it, in order; each step waits until the test finishes it. */
class ControlledAgent implements Agent {
  readonly name = "controlled";
  /** Session ids, in the order their turns reached the agent. */
  readonly seen: string[] = [];
  private readonly held = new Map<string, HeldStep>();
  private waiters: { n: number; wake: () => void }[] = [];

  step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    this.seen.push(request.sessionId);
    const result = new Promise<StepResult>((resolve, reject) => {
      this.held.set(request.sessionId, {
        request,
        sink,
        signal,
        done: (usage) => {
          sink.text("ok");
          if (usage) sink.usage(usage[0], usage[1]);
          resolve({ finish: "stop", toolCalls: [] });
        },
      });
      signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true });
    });
    this.waiters = this.waiters.filter((w) => (this.seen.length >= w.n ? (w.wake(), false) : true));
    return result;
  }

  /** Resolves once `n` steps have reached the agent. */
  reached(n: number): Promise<void> {
    if (this.seen.length >= n) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ n, wake }));
  }

  /** Finishes the step the session's turn is waiting on. */
  finish(sessionId: string, usage?: [number, number]): void {
    const step = this.held.get(sessionId);
    if (!step) throw new Error(`no step of ${sessionId} is waiting`);
    this.held.delete(sessionId);
    step.done(usage);
  }

  get waiting(): string[] {
    return [...this.held.keys()];
  }
}

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

/** 20:00 UTC on some day: 4 h to the next UTC midnight. */
const T0 = Date.UTC(2024, 5, 1) + 20 * 3_600_000;

function setup(limits: Partial<EngineLimits> = {}) {
  const agent = new ControlledAgent();
  const clock = { now: T0 };
  const engine = new Engine({ agent, limits: { maxConcurrentTurns: 2, queueUpdateMs: 10, ...limits }, now: () => clock.now });
  engines.push(engine);
  const principals = new Map<string, Principal>();
  const principal = (identity: string, limits: Partial<QuotaLimits> = {}): Principal => {
    let p = principals.get(identity);
    if (!p) {
      p = { identity, limits: { ...NO_LIMITS, ...limits } };
      principals.set(identity, p);
    }
    return p;
  };
  /** A session of `identity` with an attached fake client. */
  const open = async (identity: string, limits: Partial<QuotaLimits> = {}) => {
    const created = await engine.tryCreateSession(principal(identity, limits));
    if (!created.ok) throw new Error(`no session: ${created.error.code}`);
    const session = engine.get(created.sessionId) as Session;
    const sink = new FakeSink();
    engine.attach(session, sink, undefined);
    return { session, sink, id: created.sessionId };
  };
  return { agent, engine, clock, open };
}

type Client = Awaited<ReturnType<ReturnType<typeof setup>["open"]>>;

const input = (text: string) => ({ type: "input" as const, text, final: true, interrupt: false });
const queuedPositions = (ms: ServerMessage[]) => ms.flatMap((m) => (m.type === "progress" && m.stage === "queued" ? [m.position as number] : []));
const lastPosition = (c: Client) => queuedPositions(c.sink.messages).at(-1);
const turnEnds = (ms: ServerMessage[]) => ms.filter((m) => m.type === "turn_end");
const types = (ms: ServerMessage[]) => ms.map((m) => (m.type === "progress" ? `progress:${m.stage}` : m.type));

describe("engine admission queue", () => {
  it("queues turns over capacity, serves identities in rotation, tells positions, and completes every turn", async () => {
    const { agent, engine, open } = setup();
    const clients: Record<string, Client> = {};
    // A's three sessions first, then B's, then C's.
    for (const id of ["a", "b", "c"]) for (let i = 1; i <= 3; i++) clients[`${id}${i}`] = await open(`jwt:${id}`);
    const label = new Map(Object.entries(clients).map(([name, c]) => [c.id, name]));
    for (const [name, c] of Object.entries(clients)) {
      expect(await c.session.submit(input(`hello from ${name}`))).toEqual({ ok: true, turn: "t1" });
    }
    expect([engine.runningTurns, engine.queuedTurns]).toEqual([2, 7]);
    expect(agent.seen.map((s) => label.get(s))).toEqual(["a1", "a2"]);

    // Served in rotation, not in arrival order: A's burst waits behind B's and C's next turns.
    const order = ["a3", "b1", "c1", "b2", "c2", "b3", "c3"];
    const remaining = [...order];
    const settled = () => Promise.all(remaining.map((name, i) => (clients[name] as Client).sink.until((ms) => queuedPositions(ms).at(-1) === i)));
    await settled();
    const running = ["a1", "a2"];
    for (let k = 0; k < order.length; k++) {
      agent.finish((clients[running.shift() as string] as Client).id);
      await agent.reached(3 + k);
      running.push(remaining.shift() as string);
      await settled();
    }
    agent.finish((clients[running.shift() as string] as Client).id);
    agent.finish((clients[running.shift() as string] as Client).id);
    for (const c of Object.values(clients)) await c.sink.until((ms) => turnEnds(ms).length === 1);

    expect(agent.seen.map((s) => label.get(s))).toEqual(["a1", "a2", ...order]);
    for (const [name, c] of Object.entries(clients)) {
      const ms = c.sink.messages;
      const start = ms.find((m) => m.type === "turn_start");
      expect([name, start]).toMatchObject([name, { type: "turn_start", turn: "t1", input: `hello from ${name}` }]);
      expect([name, turnEnds(ms)]).toMatchObject([name, [{ turn: "t1", status: "completed", reason: "stop" }]]);
      // Queue progress comes between turn_start and the turn's output.
      const queued = ms.filter((m) => m.type === "progress");
      expect(queued.every((m) => m.type === "progress" && m.turn === "t1" && m.stage === "queued")).toBe(true);
      expect(types(ms)).toEqual(["session", "turn_start", ...queued.map(() => "progress:queued"), "token", "usage", "turn_end"]);
    }
    // The exact positions each queued turn heard. B's later turns move back once C arrives (C1 goes ahead of B2):
    // from then on every sequence only goes down, and ends at one 0 ("next", and it starts from there). B3 hears its own
    // place at once, and its move back (4, then 5 once C3 arrives) in one update.
    const positions = Object.fromEntries(order.map((name) => [name, queuedPositions((clients[name] as Client).sink.messages)]));
    expect(positions).toEqual({
      a3: [0],
      b1: [1, 0],
      c1: [2, 1, 0],
      b2: [2, 3, 2, 1, 0],
      c2: [4, 3, 2, 1, 0],
      b3: [3, 5, 4, 3, 2, 1, 0],
      c3: [6, 5, 4, 3, 2, 1, 0],
    });
    for (const name of ["a1", "a2"]) expect(queuedPositions((clients[name] as Client).sink.messages)).toEqual([]);
    expect([engine.runningTurns, engine.queuedTurns]).toEqual([0, 0]);
  });

  it("a queued turn that is cancelled ends cancelled at once and never reaches the agent", async () => {
    const { agent, engine, open } = setup();
    const a1 = await open("jwt:a");
    const b1 = await open("jwt:b");
    const c1 = await open("jwt:c");
    const a2 = await open("jwt:a");
    for (const c of [a1, b1, c1, a2]) expect(await c.session.submit(input("hi"))).toEqual({ ok: true, turn: "t1" });
    expect(agent.seen).toEqual([a1.id, b1.id]);
    expect([lastPosition(c1), lastPosition(a2)]).toEqual([0, 1]);

    expect(await c1.session.submit({ type: "cancel" })).toEqual({ ok: true });
    expect(types(c1.sink.messages)).toEqual(["session", "turn_start", "progress:queued", "usage", "turn_end"]);
    expect(c1.sink.messages.at(-2)).toMatchObject({ type: "usage", turn: "t1", inputTokens: 0, outputTokens: 0, partial: true });
    expect(c1.sink.messages.at(-1)).toMatchObject({ type: "turn_end", turn: "t1", status: "cancelled", reason: "cancelled" });
    expect([c1.session.activeTurn, engine.queuedTurns, engine.runningTurns]).toEqual([null, 1, 2]);
    // The one behind it moves up.
    await a2.sink.until((ms) => queuedPositions(ms).at(-1) === 0);
    expect(queuedPositions(a2.sink.messages)).toEqual([1, 0]);

    agent.finish(a1.id);
    await agent.reached(3);
    agent.finish(b1.id);
    agent.finish(a2.id);
    for (const c of [a1, b1, a2]) await c.sink.until((ms) => turnEnds(ms).length === 1);
    expect(agent.seen).toEqual([a1.id, b1.id, a2.id]);
    expect(turnEnds(a2.sink.messages)).toMatchObject([{ status: "completed" }]);
    expect(c1.session.turn("t1")).toMatchObject({ status: "cancelled", reason: "cancelled" });
    // The cancelled session can take a new input, and it runs.
    expect(await c1.session.submit(input("again"))).toEqual({ ok: true, turn: "t2" });
    expect(agent.seen.at(-1)).toBe(c1.id);
    expect([engine.runningTurns, engine.queuedTurns]).toEqual([1, 0]);
  });

  it("past maxQueuedTurns an input is refused queue_full with a retryAfterMs, and changes nothing", async () => {
    const { agent, engine, open } = setup({ maxConcurrentTurns: 1, maxQueuedTurns: 1 });
    const [s1, s2, s3] = [await open("jwt:a"), await open("jwt:b"), await open("jwt:c")];
    expect(await s1.session.submit(input("one"))).toEqual({ ok: true, turn: "t1" });
    expect(await s2.session.submit(input("two"))).toEqual({ ok: true, turn: "t1" });
    const refused = await s3.session.submit(input("three"));
    expect(refused).toEqual({ ok: false, error: { code: ErrorCode.QueueFull, message: "the server's admission queue is full", retryable: true, retryAfterMs: 1000 } });
    expect(types(s3.sink.messages)).toEqual(["session"]);
    expect([s3.session.activeTurn, engine.runningTurns, engine.queuedTurns]).toEqual([null, 1, 1]);
    agent.finish(s1.id);
    await agent.reached(2);
    // A slot freed and the queue emptied: the input is taken now, and queued behind s2.
    expect(await s3.session.submit(input("three"))).toEqual({ ok: true, turn: "t1" });
    expect(queuedPositions(s3.sink.messages)).toEqual([0]);
    agent.finish(s2.id);
    await agent.reached(3);
    agent.finish(s3.id);
    await s3.sink.until((ms) => turnEnds(ms).length === 1);
    expect(turnEnds(s3.sink.messages)).toMatchObject([{ status: "completed" }]);
  });

  it("a turn that waits past queueTimeoutMs fails queue_timeout and never reaches the agent", async () => {
    const { agent, engine, clock, open } = setup({ maxConcurrentTurns: 1, queueTimeoutMs: 40 });
    const [s1, s2] = [await open("jwt:a"), await open("jwt:b")];
    await s1.session.submit(input("one"));
    await s2.session.submit(input("two"));
    // The queue's clock is the engine's: the wait is over once it passed 40 ms.
    clock.now += 40;
    const ms = await s2.sink.until((m) => turnEnds(m).length === 1);
    expect(types(ms)).toEqual(["session", "turn_start", "progress:queued", "error", "usage", "turn_end"]);
    expect(ms[3]).toMatchObject({ type: "error", code: ErrorCode.QueueTimeout, retryable: true, retryAfterMs: 1000 });
    expect(ms[5]).toMatchObject({ type: "turn_end", status: "failed", reason: ErrorCode.QueueTimeout });
    expect([engine.runningTurns, engine.queuedTurns]).toEqual([1, 0]);
    agent.finish(s1.id);
    await s1.sink.until((m) => turnEnds(m).length === 1);
    expect(agent.seen).toEqual([s1.id]);
  });

  it("quiesce: queued turns end server_draining, new input is refused, and it resolves when the running turn ends", async () => {
    const { agent, engine, open } = setup({ maxConcurrentTurns: 1 });
    const [s1, s2, s3] = [await open("jwt:a"), await open("jwt:b"), await open("jwt:a")];
    for (const c of [s1, s2, s3]) await c.session.submit(input("x"));
    let quiet = false;
    const quiescing = engine.quiesce(5000, 2500).then(() => {
      quiet = true;
    });
    for (const c of [s2, s3]) {
      expect(c.sink.messages.filter((m) => m.type === "error")).toMatchObject([{ code: ErrorCode.ServerDraining, retryable: true }]);
      expect(turnEnds(c.sink.messages)).toMatchObject([{ status: "failed", reason: ErrorCode.ServerDraining }]);
    }
    expect(await s2.session.submit(input("again"))).toMatchObject({ ok: false, error: { code: ErrorCode.ServerDraining, retryAfterMs: 2500 } });
    await Promise.resolve();
    expect(quiet).toBe(false);
    agent.finish(s1.id);
    await quiescing;
    expect(turnEnds(s1.sink.messages)).toMatchObject([{ status: "completed" }]);
    expect(agent.seen).toEqual([s1.id]);
  });
});

describe("engine quotas per identity", () => {
  it("turns: 1 refuses a second turn of the same identity (another session), not another identity's", async () => {
    const { agent, engine, open } = setup();
    const a1 = await open("jwt:a", { turns: 1 });
    const a2 = await open("jwt:a", { turns: 1 });
    const b1 = await open("jwt:b", { turns: 1 });
    expect(await a1.session.submit(input("first"))).toEqual({ ok: true, turn: "t1" });
    expect(await a2.session.submit(input("second"))).toEqual({
      ok: false,
      error: { code: ErrorCode.QuotaExceeded, message: "this identity is over its turns quota", retryable: true, retryAfterMs: 1000, limit: "turns" },
    });
    expect(types(a2.sink.messages)).toEqual(["session"]);
    expect(await b1.session.submit(input("other"))).toEqual({ ok: true, turn: "t1" });
    const store = engine.quotas as LocalQuotaStore;
    expect([store.usage("jwt:a", T0).turns, store.usage("jwt:b", T0).turns]).toEqual([1, 1]);
    expect(store.usage("jwt:a", T0).sessions).toBe(2);
    // Once a's turn ended, its place is free again.
    agent.finish(a1.id);
    await a1.sink.until((ms) => turnEnds(ms).length === 1);
    expect(store.usage("jwt:a", T0).turns).toBe(0);
    expect(await a2.session.submit(input("second"))).toEqual({ ok: true, turn: "t1" });
    expect(agent.seen).toEqual([a1.id, b1.id, a2.id]);
  });

  it("a cancelled queued turn gives its turns quota back", async () => {
    const { engine, open } = setup({ maxConcurrentTurns: 1 });
    const b = await open("jwt:b");
    await b.session.submit(input("runs"));
    const a1 = await open("jwt:a", { turns: 1 });
    const a2 = await open("jwt:a", { turns: 1 });
    expect(await a1.session.submit(input("waits"))).toEqual({ ok: true, turn: "t1" });
    expect(engine.queuedTurns).toBe(1);
    expect(await a1.session.submit({ type: "cancel" })).toEqual({ ok: true });
    expect([engine.queuedTurns, (engine.quotas as LocalQuotaStore).usage("jwt:a", T0).turns]).toEqual([0, 0]);
    expect(await a2.session.submit(input("now"))).toEqual({ ok: true, turn: "t1" });
  });

  it("tokens_per_day: 100 — after a turn of 60 + 50 tokens the identity's next input is refused until the next UTC day", async () => {
    const { agent, engine, clock, open } = setup();
    const a1 = await open("jwt:a", { tokens_per_day: 100 });
    const a2 = await open("jwt:a", { tokens_per_day: 100 });
    const b1 = await open("jwt:b", { tokens_per_day: 100 });
    expect(await a1.session.submit(input("spend"))).toEqual({ ok: true, turn: "t1" });
    agent.finish(a1.id, [60, 50]);
    const ms = await a1.sink.until((m) => turnEnds(m).length === 1);
    expect(ms.find((m) => m.type === "usage")).toMatchObject({ inputTokens: 60, outputTokens: 50, partial: false });
    expect((engine.quotas as LocalQuotaStore).usage("jwt:a", clock.now).tokens_per_day).toBe(110);
    const refusal = {
      ok: false,
      error: { code: ErrorCode.QuotaExceeded, message: "this identity is over its tokens_per_day quota", retryable: true, retryAfterMs: 4 * 3_600_000, limit: "tokens_per_day" },
    };
    expect(await a1.session.submit(input("more"))).toEqual(refusal);
    expect(await a2.session.submit(input("more"))).toEqual(refusal);
    // Another identity is unaffected.
    expect(await b1.session.submit(input("mine"))).toEqual({ ok: true, turn: "t1" });
    // A refused input holds no turn.
    expect((engine.quotas as LocalQuotaStore).usage("jwt:a", clock.now).turns).toBe(0);
    clock.now += 3_600_000;
    expect(await a1.session.submit(input("more"))).toMatchObject({ ok: false, error: { limit: "tokens_per_day", retryAfterMs: 3 * 3_600_000 } });
    // The next UTC day.
    clock.now = Date.UTC(2024, 5, 2);
    expect(await a1.session.submit(input("more"))).toEqual({ ok: true, turn: "t2" });
    expect(agent.seen).toEqual([a1.id, b1.id, a1.id]);
  });
});
