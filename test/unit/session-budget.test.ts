import { describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage } from "@agentwire/protocol";
import { type Agent, MAX_DELTA_CHARS, type MemoryGuard, type StepRequest, type StepResult, type StepSink } from "../../src/engine/index.js";
import { engineSession } from "../helpers/engine-session.js";

/** Streams what it is given in one step, then waits for abort when `hang` is set; records the abort. */
class ScriptAgent implements Agent {
  readonly name = "script";
  aborted = false;
  constructor(private readonly script: (sink: StepSink) => void, private readonly hang = false) {}

  async step(_request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    signal.addEventListener("abort", () => (this.aborted = true), { once: true });
    this.script(sink);
    if (this.hang) await new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
    return { finish: "stop", toolCalls: [] };
  }
}

const setup = (agent: Agent, limits = {}, memory?: ConstructorParameters<typeof MemoryGuard>[0]) => engineSession({ agent, limits, memory });

const input = (text: string, id = "m1") => ({ type: "input" as const, id, text, final: true, interrupt: false });
const ended = (ms: ServerMessage[]) => ms.some((m) => m.type === "turn_end");
const tokens = (ms: ServerMessage[]) => ms.flatMap((m) => (m.type === "token" ? [m.text] : []));
const seqs = (ms: ServerMessage[]) => ms.flatMap((m) => ("seq" in m && m.seq !== undefined ? [m.seq] : []));

describe("session byte budget and turn bounds", () => {
  it("one 10 MB delta becomes frames of at most MAX_DELTA_CHARS, cut at the output limit: incomplete/output_limit, upstream aborted", async () => {
    const huge = "a".repeat(10 * 1024 * 1024);
    const agent = new ScriptAgent((sink) => sink.text(huge), true);
    const { sink, attachment } = await setup(agent, { maxTurnOutputChars: 20_000 });
    attachment.receive(input("go"));
    const ms = await sink.until(ended);
    const parts = tokens(ms);
    expect(parts.map((p) => p.length)).toEqual([4096, 4096, 4096, 4096, 20_000 - 4 * 4096]);
    expect(parts.join("")).toBe("a".repeat(20_000));
    expect(ms.at(-1)).toMatchObject({ type: "turn_end", status: "incomplete", reason: "output_limit" });
    expect(seqs(ms)).toEqual(Array.from({ length: seqs(ms).length }, (_, i) => i + 1));
    expect(agent.aborted).toBe(true);
    expect(MAX_DELTA_CHARS).toBe(4096);
  });

  it("splitting never cuts a surrogate pair", async () => {
    const text = `${"b".repeat(MAX_DELTA_CHARS - 1)}😀${"c".repeat(10)}`;
    const { sink, attachment } = await setup(new ScriptAgent((sink) => sink.text(text)));
    attachment.receive(input("go"));
    const parts = tokens(await sink.until(ended));
    expect(parts).toEqual(["b".repeat(MAX_DELTA_CHARS - 1), `😀${"c".repeat(10)}`]);
  });

  it("tool arguments past the limit fail the turn with upstream_error and abort the upstream", async () => {
    const agent = new ScriptAgent((sink) => {
      sink.toolCallStart("c1", "calculator");
      for (let i = 0; i < 10; i++) sink.toolCallDelta("c1", "x".repeat(1000));
    }, true);
    const { sink, attachment } = await setup(agent, { maxToolArgsChars: 5000 });
    attachment.receive(input("go"));
    const ms = await sink.until(ended);
    const deltas = ms.filter((m) => m.type === "tool" && m.phase === "delta");
    expect(deltas.length).toBe(5);
    expect(ms.find((m) => m.type === "error")).toMatchObject({ code: ErrorCode.UpstreamError, turn: "t1" });
    expect(ms.at(-1)).toMatchObject({ type: "turn_end", status: "failed", reason: ErrorCode.UpstreamError });
    expect(agent.aborted).toBe(true);
  });

  it("a turn past its deadline fails with upstream_timeout and its upstream is aborted", async () => {
    const agent = new ScriptAgent((sink) => sink.text("thinking"), true);
    const { sink, attachment } = await setup(agent, { turnTimeoutMs: 50 });
    attachment.receive(input("go"));
    const ms = await sink.until(ended);
    expect(ms.filter((m) => m.type !== "session" && m.type !== "ack").map((m) => m.type)).toEqual(["turn_start", "token", "error", "usage", "turn_end"]);
    expect(ms.find((m) => m.type === "error")).toMatchObject({ code: ErrorCode.UpstreamTimeout, retryable: true });
    expect(ms.at(-1)).toMatchObject({ status: "failed", reason: ErrorCode.UpstreamTimeout });
    expect(agent.aborted).toBe(true);
  });

  it("system prompt and tool declarations are capped; a refused configure changes nothing", async () => {
    const { session, sink, attachment } = await setup(new ScriptAgent(() => {}), { maxSystemChars: 100, maxToolsChars: 200 });
    attachment.receive({ type: "configure", id: "c1", system: "s".repeat(101) });
    attachment.receive({ type: "configure", id: "c2", system: "ok", tools: [{ name: "t", description: "d".repeat(300), parameters: {} }] });
    attachment.receive({ type: "configure", id: "c3", system: "fine" });
    const ms = await sink.until((m) => m.some((x) => x.type === "ack" && x.id === "c3"));
    const errors = ms.filter((m) => m.type === "error");
    expect(errors).toMatchObject([
      { code: ErrorCode.InputTooLarge, field: "system", id: "c1" },
      { code: ErrorCode.InputTooLarge, field: "tools", id: "c2" },
    ]);
    expect(session.snapshot().config).toMatchObject({ system: "fine", tools: [] });
  });

  it("finished turn records kept for polling are bounded by characters, the newest always kept", async () => {
    const agent = new ScriptAgent((sink) => sink.text("r".repeat(400)));
    const { session, sink, attachment } = await setup(agent, { maxHistoryChars: 1024 });
    for (let i = 1; i <= 6; i++) {
      attachment.receive(input(`q${i}`, `m${i}`));
      await sink.until((ms) => ms.filter((m) => m.type === "turn_end").length >= i);
    }
    expect(session.snapshot().turns.map((t) => t.id)).toEqual(["t5", "t6"]);
    expect(session.turn("t6")?.text).toBe("r".repeat(400));
  });

  it("history counts tool arguments and results against its character budget", async () => {
    const { session } = await setup(new ScriptAgent(() => {}), { maxHistoryChars: 1024 });
    const { trimHistory } = await import("../../src/engine/history.js");
    const history = [
      { role: "user" as const, text: "first" },
      { role: "assistant" as const, text: "", toolCalls: [{ id: "c", name: "t", args: { blob: "z".repeat(5000) } }] },
      { role: "tool" as const, callId: "c", name: "t", output: "ok", isError: false },
      { role: "assistant" as const, text: "done" },
      { role: "user" as const, text: "second" },
      { role: "assistant" as const, text: "answer" },
    ];
    trimHistory(history, { maxHistoryMessages: 200, maxHistoryChars: 1024 });
    expect(history.map((m) => ("text" in m ? m.text : m.output))).toEqual(["second", "answer"]);
    expect(session.history).toEqual([]);
  });

  it("past the memory budget new sessions and new turns are refused with overloaded (503, retryAfterMs)", async () => {
    const reading = { rss: 100, heapUsed: 10, heapLimit: 1000 };
    const memory = { maxRssBytes: 500, sampleMs: 0, read: () => reading };
    const { engine, sink, attachment } = await setup(new ScriptAgent((sink) => sink.text("hi")), {}, memory);
    reading.rss = 600;
    expect(await engine.createSession()).toBeNull();
    attachment.receive(input("go"));
    const ms = await sink.until((m) => m.some((x) => x.type === "error"));
    expect(ms.find((m) => m.type === "error")).toMatchObject({ code: ErrorCode.Overloaded, retryable: true, retryAfterMs: 5000, id: "m1" });
    reading.rss = 100;
    reading.heapUsed = 900;
    expect(await engine.createSession()).toBeNull();
    reading.heapUsed = 10;
    expect(engine.memory.refused).toBe(3);
    expect(await engine.createSession()).not.toBeNull();
    attachment.receive(input("again", "m2"));
    expect((await sink.until(ended)).at(-1)).toMatchObject({ type: "turn_end", status: "completed" });
  });
});
