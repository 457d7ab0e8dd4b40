// Steering a running turn over every transport: cancel, interrupt, buffered partial input, client tools.
// Exact turn_start expectations take the input id from `Link.sentId`: the SDK puts its own on the wire.
import { describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { RecordingDemoAgent } from "../helpers/agents.js";
import { arrived, find, logged, turnEnded } from "./driver.js";
import { drivers } from "./drivers.js";
import { snapshot, useServer } from "./fixture.js";

const WORDS = 400;
const tokens = (n: number) => (events: readonly ServerMessage[]) => events.filter((e) => e.type === "token").length >= n;
const started = (turn: string) => arrived((e) => e.type === "turn_start" && e.turn === turn);

/** Seqs 1..n, each once, in order. */
function expectGapFree(events: readonly ServerMessage[]): void {
  const seqs = logged(events).map((e) => e.seq);
  expect(seqs).toEqual(seqs.map((_, i) => i + 1));
}

describe.each(drivers)("steering turns over $name", (driver) => {
  // Paced, with a long reply: a turn is still running when the test acts on it.
  const agent = new RecordingDemoAgent({ tokensPerSecond: 200, replyWords: WORDS });
  const env = useServer(driver, { AGENTWIRE_CLIENT_TOOL_TIMEOUT_MS: 150 }, { agent });

  it("cancel: the turn ends cancelled with partial usage, the agent's request is aborted, nothing of it follows", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    expect(await link.send({ type: "input", id: "story", text: "tell me a long story" })).toEqual({ ok: true, turn: "t1" });
    await link.waitFor(tokens(5), "5 tokens");
    expect(await link.send({ type: "cancel", id: "stop" })).toEqual({ ok: true });
    await link.waitFor(turnEnded("t1"));
    // The step that was running when the cancel came is the agent's latest: its upstream request was aborted.
    expect(agent.signals.at(-1)?.aborted).toBe(true);
    // Cancelling nothing is acknowledged, not refused.
    expect(await link.send({ type: "cancel" })).toEqual({ ok: true });
    expect(await link.send({ type: "cancel", turn: "t1" })).toEqual({ ok: true });
    // The next turn's first event comes right after the turn_end: no token of the cancelled turn was on its way.
    expect(await link.send({ type: "input", id: "next", text: "2 + 2" })).toEqual({ ok: true, turn: "t2" });
    await link.waitFor(started("t2"));
    const events = logged(link.events);
    const end = events.findIndex((e) => e.type === "turn_end");
    expect(events[end]).toEqual({ type: "turn_end", seq: end + 1, turn: "t1", status: "cancelled", reason: "cancelled" });
    expect(events[end - 1]).toMatchObject({ type: "usage", seq: end, turn: "t1", partial: true });
    expect(events[end + 1]).toEqual({ type: "turn_start", seq: end + 2, turn: "t2", input: "2 + 2", id: link.sentId("next") });
    await link.send({ type: "cancel", turn: "t2" });
    await link.waitFor(turnEnded("t2"));
    expectGapFree(link.events);
    await link.close();
  });

  it("interrupt: a final input with interrupt ends the running turn interrupted, then starts its own", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    await link.send({ type: "input", text: "first question" });
    await link.waitFor(tokens(1), "a token");
    expect(await link.send({ type: "input", id: "barge", text: "actually, 3 + 4", interrupt: true })).toEqual({ ok: true, turn: "t2" });
    await link.waitFor(started("t2"));
    await link.send({ type: "cancel" });
    await link.waitFor(turnEnded("t2"));
    const events = logged(link.events);
    expect(events.filter((e) => e.type === "turn_end").map((e) => [e.turn, e.status, e.reason])).toEqual([
      ["t1", "cancelled", "interrupted"],
      ["t2", "cancelled", "cancelled"],
    ]);
    const t1End = events.findIndex((e) => e.type === "turn_end" && e.turn === "t1");
    expect(events[t1End - 1]).toMatchObject({ type: "usage", turn: "t1", partial: true });
    expect(events[t1End + 1]).toEqual({ type: "turn_start", seq: events[t1End]!.seq + 1, turn: "t2", input: "actually, 3 + 4", id: link.sentId("barge") });
    expect(events.slice(t1End + 1).some((e) => e.turn === "t1")).toBe(false);
    expectGapFree(link.events);
    // The polling view says the same.
    const t1 = await fetch(`${s.base}/v1/sessions/${s.sessionId}/turns/t1`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(await t1.json()).toMatchObject({ turn: "t1", status: "cancelled", reason: "interrupted" });
    await link.close();
  });

  it("barge-in: a non-final input with interrupt ends the turn and starts none; its text leads the next input", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    await link.send({ type: "input", text: "first question" });
    await link.waitFor(tokens(1), "a token");
    expect(await link.send({ type: "input", text: "wait, ", final: false, interrupt: true })).toEqual({ ok: true });
    await link.waitFor(turnEnded("t1"));
    expect(await snapshot(s)).toMatchObject({ activeTurn: null, pendingInput: "wait, " });
    expect(await link.send({ type: "input", id: "ask", text: "what is 1 + 1" })).toEqual({ ok: true, turn: "t2" });
    await link.waitFor(started("t2"));
    const events = logged(link.events);
    const t1End = events.findIndex((e) => e.type === "turn_end");
    expect(events[t1End]).toMatchObject({ turn: "t1", status: "cancelled", reason: "interrupted" });
    expect(events[t1End + 1]).toEqual({ type: "turn_start", seq: events[t1End]!.seq + 1, turn: "t2", input: "wait, what is 1 + 1", id: link.sentId("ask") });
    await link.send({ type: "cancel" });
    await link.waitFor(turnEnded("t2"));
    await link.close();
  });

  it("partial input: non-final inputs buffer without a turn; the final one starts it with their concatenation", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    for (const text of ["what ", "is ", "5 * "]) expect(await link.send({ type: "input", text, final: false })).toEqual({ ok: true });
    expect(await snapshot(s)).toMatchObject({ pendingInput: "what is 5 * ", activeTurn: null, lastSeq: 0 });
    expect(await link.send({ type: "input", id: "final", text: "5" })).toEqual({ ok: true, turn: "t1" });
    await link.waitFor(started("t1"));
    // seq 1: the buffered parts logged nothing of their own.
    expect(logged(link.events)[0]).toEqual({ type: "turn_start", seq: 1, turn: "t1", input: "what is 5 * 5", id: link.sentId("final") });
    await link.send({ type: "cancel" });
    await link.waitFor(turnEnded("t1"));
    await link.close();
  });

  it("client tool: declared by configure, called with executor client, answered by tool_result; a second answer is refused", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    const weather = { name: "weather", description: "local weather", parameters: { type: "object" } };
    expect(await link.send({ type: "configure", tools: [weather] })).toEqual({ ok: true });
    expect(await link.send({ type: "input", id: "w", text: "weather please" })).toEqual({ ok: true, turn: "t1" });
    await link.waitFor((es) => find(es, "tool", (t) => t.phase === "ready") !== undefined, "the tool call");
    const plan = planDemo("weather please", 1, WORDS, ["weather"]);
    const callId = "call_t1_0";
    const call = { type: "tool", turn: "t1", callId, name: "weather", executor: "client" };
    const tools = () => logged(link.events).filter((e) => e.type === "tool");
    expect(tools()).toEqual([
      { ...call, phase: "start", seq: expect.any(Number) },
      ...plan.call.argsChunks.map((argsDelta) => ({ ...call, phase: "delta", argsDelta, seq: expect.any(Number) })),
      { ...call, phase: "ready", args: { text: "weather please" }, seq: expect.any(Number) },
    ]);
    expect(await link.send({ type: "tool_result", callId, output: { celsius: 21 } })).toEqual({ ok: true });
    await link.waitFor((es) => find(es, "token", (t) => t.text.includes("21")) !== undefined, "the reply to use the result");
    expect(tools().at(-1)).toEqual({ ...call, phase: "result", output: { celsius: 21 }, isError: false, seq: expect.any(Number) });
    expect(await link.send({ type: "tool_result", callId, output: { celsius: 22 } })).toEqual({ ok: false, error: { code: ErrorCode.ToolCallNotFound, field: "callId", retryable: false } });
    await link.send({ type: "cancel" });
    await link.waitFor(turnEnded("t1"));
    expectGapFree(link.events);
    await link.close();
  });

  it("client tool timeout: a call nobody answers gets an error result with code tool_timeout, and the turn goes on", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    await link.send({ type: "configure", tools: [{ name: "weather" }] });
    await link.send({ type: "input", text: "weather again" });
    await link.waitFor((es) => find(es, "tool", (t) => t.phase === "result") !== undefined, "the tool result");
    const result = find(link.events, "tool", (t) => t.phase === "result");
    expect(result).toEqual({ type: "tool", seq: expect.any(Number), turn: "t1", callId: "call_t1_0", phase: "result", name: "weather", executor: "client", output: expect.any(String), isError: true, code: ErrorCode.ToolTimeout });
    // Too late: the call is no longer waiting.
    expect(await link.send({ type: "tool_result", callId: "call_t1_0", output: 1 })).toEqual({ ok: false, error: { code: ErrorCode.ToolCallNotFound, field: "callId", retryable: false } });
    await link.waitFor((es) => find(es, "progress", (p) => p.stage === "writing") !== undefined, "the next step");
    await link.send({ type: "cancel" });
    await link.waitFor(turnEnded("t1"));
    expect(find(link.events, "turn_end")).toMatchObject({ status: "cancelled" });
    await link.close();
  });
});
