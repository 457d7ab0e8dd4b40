import { afterEach, describe, expect, it } from "vitest";
import { CloseCode, ErrorCode } from "@agentwire/protocol";
import { Engine, type Session } from "../../src/engine/index.js";
import { GateAgent } from "../helpers/agents.js";
import { FakeSink } from "../helpers/fake-sink.js";

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function setup(limits = {}) {
  const clock = { now: 1_000_000 };
  const engine = new Engine({ agent: new GateAgent(), limits: { outboxSoftBytes: 1024, outboxHardBytes: 1024 * 1024, slowReaderTimeoutMs: 10_000, ...limits }, now: () => clock.now });
  engines.push(engine);
  return { engine, clock };
}

async function session(engine: Engine): Promise<Session> {
  const created = await engine.createSession();
  if (!created) throw new Error("no session");
  return engine.get(created.sessionId) as Session;
}

/** Appends `n` progress events of about 100 characters each to the session's log (and to its clients). */
function emit(s: Session, n: number): void {
  for (let i = 0; i < n; i++) s.emit({ type: "progress", turn: "t1", stage: "x".repeat(64), message: String(i) });
}

describe("slow readers", () => {
  it("a link that takes nothing while lagging is closed with 4000 after the timeout, with no new event needed", async () => {
    const { engine, clock } = setup();
    const s = await session(engine);
    const sink = new FakeSink();
    sink.growOnWrite = true;
    engine.attach(s, sink, undefined);
    emit(s, 40);
    expect(engine.lagWatch.size).toBe(1);
    clock.now += 9_999;
    expect(engine.lagWatch.check()).toBe(0);
    expect(sink.closed).toBeNull();
    clock.now += 1;
    expect(engine.lagWatch.check()).toBe(1);
    expect(sink.closed).toEqual({ code: CloseCode.SlowConsumer, reason: "slow_consumer" });
    expect(engine.lagWatch.size).toBe(0);
  });

  it("a slow reader that keeps taking bytes is not closed; one that catches up leaves the watch", async () => {
    const { engine, clock } = setup();
    const s = await session(engine);
    const sink = new FakeSink();
    sink.growOnWrite = true;
    const attachment = engine.attach(s, sink, undefined);
    emit(s, 40);
    for (let round = 0; round < 5; round++) {
      clock.now += 6_000;
      sink.buffered = Math.max(0, sink.buffered - 200); // the client read a little
      attachment.drained();
      expect(engine.lagWatch.check()).toBe(0);
    }
    expect(sink.closed).toBeNull();
    sink.buffered = 0;
    attachment.drained();
    sink.buffered = 0;
    engine.lagWatch.check();
    expect(engine.lagWatch.size).toBe(0);
    clock.now += 60_000;
    expect(engine.lagWatch.check()).toBe(0);
    expect(sink.closed).toBeNull();
  });

  it("a replay stopped by a full socket is watched too", async () => {
    const { engine, clock } = setup();
    const s = await session(engine);
    emit(s, 200);
    const sink = new FakeSink();
    sink.growOnWrite = true;
    engine.attach(s, sink, 0);
    expect(engine.lagWatch.size).toBe(1);
    clock.now += 10_000;
    expect(engine.lagWatch.check()).toBe(1);
    expect(sink.closed?.code).toBe(CloseCode.SlowConsumer);
  });

  it("resume frames count against the session's message rate, echoing the id", async () => {
    const { engine } = setup({ inputRatePerSec: 1, inputBurst: 3 });
    const s = await session(engine);
    emit(s, 3);
    const sink = new FakeSink();
    const attachment = engine.attach(s, sink, undefined);
    for (let i = 1; i <= 4; i++) attachment.receive({ type: "resume", id: `r${i}`, afterSeq: 0 });
    const errors = sink.messages.filter((m) => m.type === "error");
    expect(errors).toEqual([{ type: "error", code: ErrorCode.RateLimited, message: expect.any(String), retryable: true, retryAfterMs: 1000, id: "r4" }]);
    expect(sink.messages.filter((m) => m.type === "session").length).toBe(4);
  });

  it("the bytes a link replays are budgeted: two full logs, then rate_limited with the wait until a refill", async () => {
    const { engine, clock } = setup({ logMaxBytes: 10_000, inputRatePerSec: 1000, inputBurst: 1000 });
    const s = await session(engine);
    emit(s, 200);
    const full = s.log.bytesAfter(0);
    expect(full).toBe(s.log.bytes);
    expect(full).toBeLessThanOrEqual(10_000);
    const sink = new FakeSink();
    const attachment = engine.attach(s, sink, undefined);
    attachment.receive({ type: "resume", id: "a", afterSeq: s.log.firstSeq - 1 });
    attachment.receive({ type: "resume", id: "b", afterSeq: s.log.firstSeq - 1 });
    attachment.receive({ type: "resume", id: "c", afterSeq: s.log.firstSeq - 1 });
    const refused = sink.messages.filter((m) => m.type === "error");
    expect(refused).toMatchObject([{ code: ErrorCode.RateLimited, field: "afterSeq", id: "c", retryable: true }]);
    // The budget refills at a tenth of its capacity (2 x logMaxBytes) per second.
    const wait = (refused[0] as { retryAfterMs: number }).retryAfterMs;
    expect(wait).toBe(Math.ceil(((full - (20_000 - 2 * full)) / 2000) * 1000));
    clock.now += wait;
    attachment.receive({ type: "resume", id: "d", afterSeq: s.log.firstSeq - 1 });
    expect(sink.messages.filter((m) => m.type === "error").length).toBe(1);
    // Resuming from the end costs nothing.
    attachment.receive({ type: "resume", id: "e", afterSeq: s.log.lastSeq });
    expect(sink.messages.filter((m) => m.type === "error").length).toBe(1);
  });
});
