import { describe, expect, it } from "vitest";
import { CloseCode, type LoggedEvent } from "@agentwire/protocol";
import { Outbox } from "../../src/engine/outbox.js";
import { FakeSink } from "../helpers/fake-sink.js";

let seq = 0;
function ev(e: Record<string, unknown>): [string, { event: LoggedEvent }] {
  const event = { ...e, seq: ++seq } as LoggedEvent;
  return [JSON.stringify(event), { event }];
}
const push = (box: Outbox, e: Record<string, unknown>) => box.push(...ev(e));

describe("Outbox", () => {
  it("writes straight through while the socket keeps up", () => {
    const sink = new FakeSink();
    const box = new Outbox(sink, { softBytes: 100, hardBytes: 1000 });
    push(box, { type: "token", turn: "t1", text: "a" });
    push(box, { type: "token", turn: "t1", text: "b" });
    expect(sink.messages.map((m) => (m as { text: string }).text)).toEqual(["a", "b"]);
    expect(box.pendingFrames).toBe(0);
  });

  it("merges token deltas and keeps only the newest progress while lagging; never drops tool, usage, turn_end", () => {
    seq = 0;
    const sink = new FakeSink();
    const box = new Outbox(sink, { softBytes: 100, hardBytes: 10_000 });
    sink.buffered = 500;
    push(box, { type: "token", turn: "t1", text: "Hel" }); // 1
    push(box, { type: "token", turn: "t1", text: "lo" }); // 2
    push(box, { type: "progress", turn: "t1", stage: "a" }); // 3
    push(box, { type: "token", turn: "t1", text: " wor" }); // 4
    push(box, { type: "progress", turn: "t1", stage: "b" }); // 5
    push(box, { type: "token", turn: "t1", text: "ld" }); // 6
    push(box, { type: "tool", turn: "t1", callId: "c", phase: "ready", name: "x", executor: "server", args: {} }); // 7
    push(box, { type: "token", turn: "t1", text: "!" }); // 8
    push(box, { type: "usage", turn: "t1", inputTokens: 1, outputTokens: 2, partial: false }); // 9
    push(box, { type: "turn_end", turn: "t1", status: "completed", reason: "stop" }); // 10
    expect(sink.frames).toEqual([]);
    sink.buffered = 0;
    box.flush();
    expect(sink.messages).toEqual([
      // Tokens merge up to the newest progress; seq stays increasing in delivery order.
      { type: "token", seq: 4, turn: "t1", text: "Hello wor", from: 1 },
      { type: "progress", seq: 5, turn: "t1", stage: "b" },
      { type: "token", seq: 6, turn: "t1", text: "ld" },
      { type: "tool", seq: 7, turn: "t1", callId: "c", phase: "ready", name: "x", executor: "server", args: {} },
      { type: "token", seq: 8, turn: "t1", text: "!" },
      { type: "usage", seq: 9, turn: "t1", inputTokens: 1, outputTokens: 2, partial: false },
      { type: "turn_end", seq: 10, turn: "t1", status: "completed", reason: "stop" },
    ]);
    expect(box.merged).toBe(3);
  });

  it("does not merge tokens of different turns", () => {
    const sink = new FakeSink();
    const box = new Outbox(sink, { softBytes: 10, hardBytes: 10_000 });
    sink.buffered = 50;
    push(box, { type: "token", turn: "t1", text: "a" });
    push(box, { type: "token", turn: "t2", text: "b" });
    sink.buffered = 0;
    box.flush();
    expect(sink.messages.map((m) => (m as { turn: string }).turn)).toEqual(["t1", "t2"]);
  });

  it("closes with SlowConsumer past the hard cap and then stays silent", () => {
    const sink = new FakeSink();
    const box = new Outbox(sink, { softBytes: 100, hardBytes: 2000 });
    sink.buffered = 1500;
    for (let i = 0; i < 20 && !box.isClosed; i++) push(box, { type: "tool", turn: "t1", callId: `c${i}`, phase: "delta", name: "n", executor: "server", argsDelta: "x".repeat(40) });
    expect(sink.closed).toEqual({ code: CloseCode.SlowConsumer, reason: "slow_consumer" });
    expect(box.pendingBytes).toBe(0);
    push(box, { type: "token", turn: "t1", text: "late" });
    box.flush();
    expect(sink.frames).toEqual([]);
  });

  it("flushes only what fits under the soft limit per drain", () => {
    const sink = new FakeSink();
    const box = new Outbox(sink, { softBytes: 200, hardBytes: 100_000 });
    sink.buffered = 300;
    for (let i = 0; i < 10; i++) push(box, { type: "tool", turn: "t1", callId: `c${i}`, phase: "delta", name: "n", executor: "server", argsDelta: "y".repeat(30) });
    sink.growOnWrite = true;
    sink.buffered = 0;
    box.flush();
    const first = sink.frames.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(10);
    // The peer reads everything each time: every drain writes the next share, in order.
    for (let drains = 0; drains < 10 && box.pendingFrames > 0; drains++) {
      sink.buffered = 0;
      box.flush();
    }
    expect(sink.frames.length).toBe(10);
    expect(sink.messages.map((m) => (m as { callId: string }).callId)).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`));
  });

  it("merges thousands of deltas exactly, across the joins of its text pieces and around dropped progress", () => {
    seq = 0;
    const sink = new FakeSink();
    const box = new Outbox(sink, { softBytes: 100, hardBytes: 10_000_000 });
    sink.buffered = 500;
    let expected = "";
    for (let i = 0; i < 1000; i++) {
      const text = `${i},`;
      expected += text;
      push(box, { type: "token", turn: "t1", text });
      if (i % 150 === 7) push(box, { type: "progress", turn: "t1", stage: `p${i}` });
    }
    sink.buffered = 0;
    box.flush();
    const tokens = sink.messages.filter((m) => m.type === "token") as { text: string; seq: number; from?: number }[];
    expect(tokens.map((t) => t.text).join("")).toBe(expected);
    // Only the newest progress is left, so the tokens around the dropped ones merged into two frames.
    expect(sink.messages.map((m) => m.type)).toEqual(["token", "progress", "token"]);
    expect(tokens[0]?.from).toBe(1);
    expect((tokens[1]?.from ?? 0) - 1).toBe(sink.messages.find((m) => m.type === "progress")?.seq);
    expect(tokens[1]?.seq).toBe(seq);
  });
});

