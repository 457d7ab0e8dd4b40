import { afterEach, describe, expect, it } from "vitest";
import { CloseCode, ErrorCode, type ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { type Agent, AgentError, Engine, type Session } from "../../src/engine/index.js";
import { GateAgent, RecordingDemoAgent } from "../helpers/agents.js";
import { engineSession } from "../helpers/engine-session.js";
import { FakeSink } from "../helpers/fake-sink.js";

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

const setup = (agent: Agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 6 }), limits = {}) => engineSession({ agent, limits });

const ended = (ms: ServerMessage[], n = 1) => ms.filter((m) => m.type === "turn_end").length >= n;
const types = (ms: ServerMessage[]) => ms.map((m) => (m.type === "tool" ? `tool:${m.phase}` : m.type));
const text = (ms: ServerMessage[]) => ms.map((m) => (m.type === "token" ? m.text : "")).join("");

describe("engine turns", () => {
  it("runs a full demo turn: exact order, gap-free seq, text equal to the script", async () => {
    const { sink, attachment } = await setup();
    attachment.receive({ type: "input", id: "m1", text: "what is 6 * 7", final: true, interrupt: false });
    const ms = await sink.until((m) => ended(m));
    const plan = planDemo("what is 6 * 7", 1, 6);
    expect(types(ms)).toEqual([
      "session",
      "ack",
      "turn_start",
      "progress",
      ...plan.intro.map(() => "token"),
      "progress",
      "tool:start",
      ...plan.call.argsChunks.map(() => "tool:delta"),
      "tool:ready",
      "tool:result",
      "progress",
      ...[...plan.reply('{"value":42}', false)].map(() => "token"),
      "usage",
      "turn_end",
    ]);
    const seqs = ms.flatMap((m) => ("seq" in m && m.seq !== undefined ? [m.seq] : []));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(text(ms)).toBe([...plan.intro, ...plan.reply('{"value":42}', false)].join(""));
    expect(ms.find((m) => m.type === "ack")).toEqual({ type: "ack", id: "m1", turn: "t1" });
    const result = ms.find((m) => m.type === "tool" && m.phase === "result");
    expect(result).toMatchObject({ name: "calculator", executor: "server", output: { value: 42 }, isError: false });
    const usage = ms.find((m) => m.type === "usage");
    expect(usage).toMatchObject({ partial: false });
    expect((usage as { outputTokens: number }).outputTokens).toBe(plan.intro.length + plan.call.argsChunks.length + plan.reply('{"value":42}', false).length);
    expect(ms.at(-1)).toMatchObject({ type: "turn_end", turn: "t1", status: "completed", reason: "stop" });
  });

  it("cancel ends the turn at once with partial usage, aborts the agent, and is idempotent", async () => {
    const agent = new GateAgent();
    const { sink, attachment, session } = await setup(agent);
    attachment.receive({ type: "input", text: "hi", final: true, interrupt: false });
    await sink.until((m) => m.some((x) => x.type === "token"));
    attachment.receive({ type: "cancel", id: "c1" });
    attachment.receive({ type: "cancel", id: "c2" });
    agent.release();
    await Promise.resolve();
    const ms = sink.messages;
    expect(types(ms)).toEqual(["session", "turn_start", "token", "usage", "turn_end", "ack", "ack"]);
    expect(ms[4]).toMatchObject({ type: "turn_end", status: "cancelled", reason: "cancelled" });
    expect(ms[3]).toMatchObject({ type: "usage", partial: true });
    expect(agent.signals[0]?.aborted).toBe(true);
    expect(session.activeTurn).toBeNull();
    expect(text(ms)).toBe("waiting");
  });

  it("interrupt: cancels the running turn, then starts the new one with the new input", async () => {
    const agent = new GateAgent();
    const { sink, attachment } = await setup(agent);
    attachment.receive({ type: "input", text: "first", final: true, interrupt: false });
    await sink.until((m) => m.some((x) => x.type === "token"));
    attachment.receive({ type: "input", text: "second", final: true, interrupt: true });
    await sink.until((m) => m.filter((x) => x.type === "token").length === 2);
    agent.release();
    const ms = await sink.until((m) => ended(m, 2));
    expect(types(ms)).toEqual(["session", "turn_start", "token", "usage", "turn_end", "turn_start", "token", "token", "usage", "turn_end"]);
    expect(ms[4]).toMatchObject({ turn: "t1", status: "cancelled", reason: "interrupted" });
    expect(ms[5]).toMatchObject({ turn: "t2", input: "second" });
    expect(ms[9]).toMatchObject({ turn: "t2", status: "completed" });
    expect(agent.signals[0]?.aborted).toBe(true);
  });

  it("a refused input with interrupt (too large, empty) leaves the running turn running", async () => {
    const agent = new GateAgent();
    const { sink, attachment, session } = await setup(agent, { maxInputChars: 8 });
    attachment.receive({ type: "input", text: "first", final: true, interrupt: false });
    await sink.until((m) => m.some((x) => x.type === "token"));
    attachment.receive({ type: "input", id: "big", text: "far too long", final: true, interrupt: true });
    attachment.receive({ type: "input", id: "empty", text: "  ", final: true, interrupt: true });
    attachment.receive({ type: "input", id: "partial", text: "123456789", final: false, interrupt: true });
    expect(sink.messages.filter((m) => m.type === "error").map((m) => [m.id, m.code, m.field])).toEqual([
      ["big", ErrorCode.InputTooLarge, "text"],
      ["empty", ErrorCode.InvalidMessage, "text"],
      ["partial", ErrorCode.InputTooLarge, "text"],
    ]);
    expect([session.activeTurn?.id, agent.signals[0]?.aborted]).toEqual(["t1", false]);
    agent.release();
    expect((await sink.until((m) => ended(m))).at(-1)).toMatchObject({ type: "turn_end", status: "completed" });
  });

  it("input while a turn runs without interrupt is refused with turn_active and loses nothing", async () => {
    const agent = new GateAgent();
    const { sink, attachment } = await setup(agent);
    attachment.receive({ type: "input", text: "first", final: true, interrupt: false });
    await sink.until((m) => m.some((x) => x.type === "token"));
    attachment.receive({ type: "input", id: "x", text: "second", final: true, interrupt: false });
    const error = sink.messages.find((m) => m.type === "error");
    expect(error).toMatchObject({ code: ErrorCode.TurnActive, id: "x", retryable: true, field: "interrupt" });
    agent.release();
    await sink.until((m) => ended(m));
    attachment.receive({ type: "input", text: "second", final: true, interrupt: false });
    await sink.until((m) => m.filter((x) => x.type === "token").length === 3);
    agent.release();
    const ms = await sink.until((m) => ended(m, 2));
    expect(ms.filter((m) => m.type === "turn_start").map((m) => (m as { input: string }).input)).toEqual(["first", "second"]);
  });

  it("non-final input buffers without a turn; the final input joins it", async () => {
    const { sink, attachment, session } = await setup();
    attachment.receive({ type: "input", text: "what is ", final: false, interrupt: false });
    attachment.receive({ type: "input", text: "2 + ", final: false, interrupt: false });
    expect(session.activeTurn).toBeNull();
    expect(session.snapshot().pendingInput).toBe("what is 2 + ");
    attachment.receive({ type: "input", text: "3", final: true, interrupt: false });
    const ms = await sink.until((m) => ended(m));
    expect(ms.find((m) => m.type === "turn_start")).toMatchObject({ input: "what is 2 + 3" });
    expect(ms.find((m) => m.type === "tool" && m.phase === "result")).toMatchObject({ output: { value: 5 } });
    expect(session.snapshot().pendingInput).toBe("");
  });

  it("buffered input beyond the limit is refused with input_too_large on field text", async () => {
    const { sink, attachment } = await setup(undefined, { maxInputChars: 10 });
    attachment.receive({ type: "input", text: "123456", final: false, interrupt: false });
    attachment.receive({ type: "input", id: "big", text: "789012", final: false, interrupt: false });
    expect(sink.messages.at(-1)).toMatchObject({ type: "error", code: ErrorCode.InputTooLarge, field: "text", id: "big" });
  });

  it("client tool round trip: the call waits for tool_result and the answer reaches the model", async () => {
    const agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 3 });
    const { sink, attachment } = await setup(agent);
    attachment.receive({ type: "configure", tools: [{ name: "lookup", description: "d", parameters: {} }] });
    attachment.receive({ type: "input", text: "please lookup this", final: true, interrupt: false });
    const ready = await sink.until((m) => m.some((x) => x.type === "tool" && x.phase === "ready"));
    const call = ready.find((m) => m.type === "tool" && m.phase === "ready");
    expect(call).toMatchObject({ name: "lookup", executor: "client", args: { text: "please lookup this" } });
    attachment.receive({ type: "tool_result", id: "r", callId: (call as { callId: string }).callId, output: "found it", isError: false });
    const ms = await sink.until((m) => ended(m));
    expect(ms.find((m) => m.type === "tool" && m.phase === "result")).toMatchObject({ executor: "client", output: "found it", isError: false });
    expect(text(ms)).toContain("The lookup tool says found it.");
    expect(agent.requests[1]?.history.at(-1)).toEqual({ role: "tool", callId: (call as { callId: string }).callId, name: "lookup", output: "found it", isError: false });
  });

  it("client tool timeout: the result is an error with tool_timeout and the turn still completes", async () => {
    const { sink, attachment } = await setup(undefined, { clientToolTimeoutMs: 30 });
    attachment.receive({ type: "configure", tools: [{ name: "lookup", description: "d", parameters: {} }] });
    attachment.receive({ type: "input", text: "lookup", final: true, interrupt: false });
    const ms = await sink.until((m) => ended(m));
    expect(ms.find((m) => m.type === "tool" && m.phase === "result")).toMatchObject({ isError: true, code: ErrorCode.ToolTimeout });
    expect(ms.at(-1)).toMatchObject({ type: "turn_end", status: "completed" });
    attachment.receive({ type: "tool_result", id: "late", callId: "call_t1_0", output: 1, isError: false });
    expect(sink.messages.at(-1)).toMatchObject({ type: "error", code: ErrorCode.ToolCallNotFound, field: "callId", id: "late" });
  });

  it("an agent failure gives a logged error, partial usage and turn_end failed with the code", async () => {
    const agent: Agent = {
      name: "broken",
      async step(_r, sink) {
        sink.text("par");
        sink.usage(5, 1);
        throw new AgentError(ErrorCode.UpstreamOverloaded, "overloaded", true, 2000);
      },
    };
    const { sink, attachment } = await setup(agent);
    attachment.receive({ type: "input", text: "x", final: true, interrupt: false });
    const ms = await sink.until((m) => ended(m));
    expect(ms.slice(1)).toEqual([
      { type: "turn_start", seq: 1, turn: "t1", input: "x" },
      { type: "token", seq: 2, turn: "t1", text: "par" },
      { type: "error", seq: 3, turn: "t1", code: "upstream_overloaded", message: "overloaded", retryable: true, retryAfterMs: 2000 },
      { type: "usage", seq: 4, turn: "t1", inputTokens: 5, outputTokens: 1, partial: true },
      { type: "turn_end", seq: 5, turn: "t1", status: "failed", reason: "upstream_overloaded" },
    ]);
  });

  it("a step that ends without its end marker ends the turn incomplete", async () => {
    const agent: Agent = {
      name: "cut",
      async step(_r, sink) {
        sink.text("half");
        return { finish: "incomplete", toolCalls: [] };
      },
    };
    const { sink, attachment } = await setup(agent);
    attachment.receive({ type: "input", text: "x", final: true, interrupt: false });
    const ms = await sink.until((m) => ended(m));
    expect(ms.at(-1)).toMatchObject({ status: "incomplete", reason: "truncated" });
    expect(ms.at(-2)).toMatchObject({ type: "usage", partial: true });
  });

  it("stops a tool loop at max_steps", async () => {
    const agent: Agent = {
      name: "loop",
      step: async (r) => ({ finish: "tool_calls", toolCalls: [{ id: `c${r.step}`, name: "clock", args: {} }] }),
    };
    const { sink, attachment } = await setup(agent, { maxSteps: 3 });
    attachment.receive({ type: "input", text: "x", final: true, interrupt: false });
    const ms = await sink.until((m) => ended(m));
    expect(ms.filter((m) => m.type === "tool" && m.phase === "result")).toHaveLength(3);
    expect(ms.at(-1)).toMatchObject({ status: "incomplete", reason: "max_steps" });
  });

  it("limits the message rate per session with rate_limited and retryAfterMs", async () => {
    const { sink, attachment } = await setup(undefined, { inputRatePerSec: 1, inputBurst: 3 });
    for (let i = 0; i < 4; i++) attachment.receive({ type: "ping", id: `p${i}` });
    const ms = sink.messages.slice(1);
    expect(ms.slice(0, 3).map((m) => m.type)).toEqual(["pong", "pong", "pong"]);
    expect(ms[3]).toMatchObject({ type: "error", code: ErrorCode.RateLimited, id: "p3", retryable: true });
    expect((ms[3] as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
  });

  it("refuses a client tool named like a server tool, naming the field", async () => {
    const { sink, attachment } = await setup();
    attachment.receive({ type: "configure", id: "c", tools: [{ name: "x", description: "", parameters: {} }, { name: "calculator", description: "", parameters: {} }] });
    expect(sink.messages.at(-1)).toMatchObject({ type: "error", code: ErrorCode.InvalidMessage, field: "tools.1.name", id: "c" });
  });

  it("resume replays after the position, and a position out of the log says recovered: false", async () => {
    const { engine, session, sink, attachment } = await setup(undefined, { logMaxEvents: 16 });
    attachment.receive({ type: "input", text: "1 + 1", final: true, interrupt: false });
    await sink.until((m) => ended(m));
    const last = session.log.lastSeq;
    expect(last).toBeGreaterThan(16);
    const again = new FakeSink();
    engine.attach(session, again, last - 3);
    expect(again.messages.map((m) => ("seq" in m ? m.seq : m.type))).toEqual(["session", last - 2, last - 1, last]);
    expect(again.messages[0]).toMatchObject({ resumed: true, recovered: true, lastSeq: last });
    const lost = new FakeSink();
    engine.attach(session, lost, 1);
    expect(lost.messages).toHaveLength(1);
    expect(lost.messages[0]).toMatchObject({ type: "session", resumed: true, recovered: false, lastSeq: last });
  });

  it("expires idle sessions and closes their clients with SessionEnded", async () => {
    let now = 0;
    const engine = new Engine({ agent: new RecordingDemoAgent(), limits: { sessionIdleMs: 1000 }, now: () => now });
    engines.push(engine);
    const a = await engine.createSession();
    const b = await engine.createSession();
    const sink = new FakeSink();
    const attached = engine.attach(engine.get(b?.sessionId ?? "") as Session, sink, undefined);
    now = 5000;
    expect(engine.expireIdle()).toBe(1);
    expect(engine.get(a?.sessionId ?? "")).toBeUndefined();
    attached.detach();
    now = 10_000;
    expect(engine.expireIdle()).toBe(1);
    expect(engine.sessionCount).toBe(0);
    expect(await engine.deleteSession("nope")).toBe(false);
    expect(sink.closed).toBeNull();
    const c = await engine.createSession();
    const sinkC = new FakeSink();
    engine.attach(engine.get(c?.sessionId ?? "") as Session, sinkC, undefined);
    expect(await engine.deleteSession(c?.sessionId ?? "")).toBe(true);
    expect(sinkC.closed).toEqual({ code: CloseCode.SessionEnded, reason: "session_ended" });
  });
});

describe("history budget", () => {
  it("keeps the newest whole exchanges within the character budget, starting at a user message", async () => {
    const { sink, attachment, session } = await setup(new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 20 }), { maxHistoryChars: 400 });
    for (let i = 1; i <= 4; i++) {
      attachment.receive({ type: "input", text: `${i} + ${i}`, final: true, interrupt: false });
      await sink.until((m) => ended(m, i));
    }
    const history = session.snapshot().history;
    const chars = history.reduce((n, m) => n + ("text" in m ? m.text.length : m.output.length), 0);
    expect(chars).toBeLessThanOrEqual(400);
    expect(history[0]).toEqual({ role: "user", text: expect.stringMatching(/^\d \+ \d$/) });
    expect(history.at(-1)?.role).toBe("assistant");
    expect(history.filter((m) => m.role === "user").map((m) => (m as { text: string }).text).at(-1)).toBe("4 + 4");
    expect(history.length).toBeLessThan(16);
  });
});
