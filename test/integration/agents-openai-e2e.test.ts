// OpenAI agent end to end: a real server on port 0 streaming from a fake Chat Completions upstream to a real ws client.
import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { calculatorTool, clockTool } from "../../src/agents/demo-tools.js";
import { FakeProvider, type Handler, drip, gated, openai, respond, stream } from "../helpers/fake-provider.js";
import { fixture } from "../helpers/fake-upstream.js";
import { kinds, providerHarness, times, withoutSeq } from "../helpers/provider-e2e.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

const KEY = "sk-e2e-openai-0123456789";
/** The text that openai-chat-text.sse streams, and its usage chunk. */
const FIXTURE_TEXT = "Sessions keep the conversation going, even when the network blinks.";
const FIXTURE_EVENTS = fixture("openai-chat-text.sse").split(/(?<=\n\n)/);
const SERVER_TOOLS = [calculatorTool, clockTool].map(({ declaration: d }) => ({
  type: "function",
  function: { name: d.name, description: d.description, parameters: d.parameters },
}));

const setup = providerHarness((url, apiKey) => ({ AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: `${url}/v1`, OPENAI_API_KEY: apiKey }), KEY);

describe("OpenAI agent through the real server", () => {
  it("text turn: tokens are the fixture's text, exact usage, completed; the body is Chat Completions with bearer auth", async () => {
    const { fake, ws } = await setup([stream(fixture("openai-chat-text.sse"), { split: { random: 11, pieces: 40 } })]);
    ws.send({ type: "configure", id: "cfg", system: "Be brief." });
    await ws.next("ack", (a) => a.id === "cfg");
    ws.send({ type: "input", text: "Hi" });
    const end = await ws.waitForTurnEnd();
    expect(turnText(ws.messages, "t1")).toBe(FIXTURE_TEXT);
    const events = logged(ws.messages);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(kinds(ws.messages)).toEqual(["turn_start", ...times(12, "token"), "usage", "turn_end"]);
    expect(withoutSeq(events.at(-2) as ServerMessage & { seq: number })).toEqual({ type: "usage", turn: "t1", inputTokens: 16, outputTokens: 12, partial: false });
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "completed", reason: "stop" });
    const sent = await fake.request(0);
    expect([fake.requests.length, sent.url, sent.headers.authorization, sent.headers["content-type"]]).toEqual([1, "/v1/chat/completions", `Bearer ${KEY}`, "application/json"]);
    expect(sent.body).toEqual({
      model: "m",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
      stream: true,
      stream_options: { include_usage: true },
      tools: SERVER_TOOLS,
    });
  });

  it("server tool round trip: calculator runs between two upstream requests; the second carries the tool result", async () => {
    const call = openai.toolCall(0, "call_calc1", "calculator", ['{"expr', 'ession": "12', ' * 12"}']);
    const { fake, ws } = await setup([
      stream(openai.sse([...call, openai.finish("tool_calls"), openai.usage(70, 12)]), { split: "bytes" }),
      stream(openai.sse([openai.text("12 * 12 = "), openai.text("144."), openai.finish("stop"), openai.usage(95, 6)])),
    ]);
    ws.send({ type: "input", text: "what is 12 * 12?" });
    await ws.waitForTurnEnd();
    expect(kinds(ws.messages)).toEqual(["turn_start", "tool:start", ...times(3, "tool:delta"), "tool:ready", "tool:result", "token", "token", "usage", "turn_end"]);
    const tool = { type: "tool", turn: "t1", callId: "call_calc1", name: "calculator", executor: "server" };
    expect(logged(ws.messages).filter((e) => e.type === "tool").map(withoutSeq)).toEqual([
      { ...tool, phase: "start" },
      { ...tool, phase: "delta", argsDelta: '{"expr' },
      { ...tool, phase: "delta", argsDelta: 'ession": "12' },
      { ...tool, phase: "delta", argsDelta: ' * 12"}' },
      { ...tool, phase: "ready", args: { expression: "12 * 12" } },
      { ...tool, phase: "result", output: { value: 144 }, isError: false },
    ]);
    expect(turnText(ws.messages, "t1")).toBe("12 * 12 = 144.");
    expect(logged(ws.messages).at(-2)).toMatchObject({ type: "usage", inputTokens: 165, outputTokens: 18, partial: false });
    expect(fake.requests.length).toBe(2);
    expect(fake.requests[1]?.body).toEqual({
      model: "m",
      messages: [
        { role: "user", content: "what is 12 * 12?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_calc1", type: "function", function: { name: "calculator", arguments: '{"expression":"12 * 12"}' } }],
        },
        { role: "tool", tool_call_id: "call_calc1", content: '{"value":144}' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      tools: SERVER_TOOLS,
    });
  });

  it("client tool round trip: declared by configure, answered with tool_result, carried by the next request", async () => {
    const location = { name: "get_location", description: "Where the user is", parameters: { type: "object", properties: {} } };
    const { fake, ws } = await setup([
      stream(openai.sse([...openai.toolCall(0, "call_loc1", "get_location", ["{", "}"]), openai.finish("tool_calls"), openai.usage(80, 5)])),
      stream(openai.sse([openai.text("You are in Osaka."), openai.finish("stop"), openai.usage(100, 5)])),
    ]);
    ws.send({ type: "configure", id: "cfg", tools: [location] });
    await ws.next("ack", (a) => a.id === "cfg");
    ws.send({ type: "input", text: "where am I?" });
    const ready = await ws.next("tool", (t) => t.phase === "ready");
    expect(withoutSeq(ready)).toEqual({ type: "tool", turn: "t1", callId: "call_loc1", phase: "ready", name: "get_location", executor: "client", args: {} });
    expect(fake.requests.length).toBe(1);
    ws.send({ type: "tool_result", callId: "call_loc1", output: { city: "Osaka" } });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    expect(kinds(ws.messages)).toEqual(["turn_start", "tool:start", "tool:delta", "tool:delta", "tool:ready", "tool:result", "token", "usage", "turn_end"]);
    expect(logged(ws.messages).filter((e) => e.type === "tool").map((e) => (e as { executor: string }).executor)).toEqual(times(5, "client"));
    expect(turnText(ws.messages, "t1")).toBe("You are in Osaka.");
    const declared = { type: "function", function: location };
    expect(fake.requests[0]?.body.tools).toEqual([...SERVER_TOOLS, declared]);
    expect(fake.requests[1]?.body.messages).toEqual([
      { role: "user", content: "where am I?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_loc1", type: "function", function: { name: "get_location", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "call_loc1", content: '{"city":"Osaka"}' },
    ]);
  });
});

describe("OpenAI upstream failures through the real server", () => {
  it("429 with retry-after before the stream, then success: two requests, the wait honoured, the text once", async () => {
    const limited = JSON.stringify({ error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } });
    const { fake, ws } = await setup([respond(429, limited, { "retry-after": "1" }), stream(fixture("openai-chat-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    expect(kinds(ws.messages)).toEqual(["turn_start", ...times(12, "token"), "usage", "turn_end"]);
    expect(turnText(ws.messages, "t1")).toBe(FIXTURE_TEXT);
    expect(fake.requests.length).toBe(2);
    expect(fake.requests[1]?.bodyText).toBe(fake.requests[0]?.bodyText);
    // Full-jitter backoff alone waits under 500 ms at the defaults: only retry-after explains a second.
    expect((fake.requests[1]?.arrivedAt ?? 0) - (fake.requests[0]?.arrivedAt ?? 0)).toBeGreaterThanOrEqual(990);
  });

  it("an error payload mid-stream after tokens reached the client: error, turn_end failed, no retry", async () => {
    const gate = gated(FIXTURE_EVENTS.slice(0, 3).join(""));
    const { fake, ws } = await setup([gate.handler, stream(fixture("openai-chat-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    await ws.waitUntil((ms) => turnText(ms, "t1") === "Sessions keep", "the first tokens");
    gate.release('data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}\n\n', "end");
    const end = await ws.waitForTurnEnd();
    expect(kinds(ws.messages)).toEqual(["turn_start", "token", "token", "error", "usage", "turn_end"]);
    expect(ws.messages.find((m) => m.type === "error")).toMatchObject({ turn: "t1", code: "upstream_error", retryable: true });
    expect(logged(ws.messages).at(-2)).toMatchObject({ type: "usage", partial: true });
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "failed", reason: "upstream_error" });
    expect(fake.requests.length).toBe(1);
  });

  it("the connection dropped without [DONE]: turn_end incomplete with the text so far", async () => {
    const gate = gated(FIXTURE_EVENTS.slice(0, 6).join(""));
    const { fake, ws } = await setup([gate.handler, stream(fixture("openai-chat-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    await ws.waitUntil((ms) => turnText(ms, "t1") === "Sessions keep the conversation going", "the first tokens");
    gate.release(`${FIXTURE_EVENTS.slice(6, 8).join("")}data: {"choi`, "destroy");
    const end = await ws.waitForTurnEnd();
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "incomplete", reason: "truncated" });
    expect(turnText(ws.messages, "t1")).toBe("Sessions keep the conversation going, even");
    expect(kinds(ws.messages)).toEqual(["turn_start", ...times(7, "token"), "usage", "turn_end"]);
    expect(logged(ws.messages).at(-2)).toMatchObject({ type: "usage", partial: true });
    expect(fake.requests.length).toBe(1);
  });

  it("error bodies never leak the API key, neither to the client nor into the logs", async () => {
    const secret = "e2e-openai-key-7f3a9c21b4d8";
    const body = JSON.stringify({ error: { message: `Incorrect API key provided: ${secret}.`, type: "invalid_request_error", code: "invalid_api_key" } });
    const { fake, ws, logs } = await setup([respond(401, body)], secret);
    ws.send({ type: "input", text: "Hi" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: "upstream_error" });
    expect(ws.messages.find((m) => m.type === "error")).toMatchObject({ code: "upstream_error", retryable: false });
    expect(fake.requests[0]?.headers.authorization).toBe(`Bearer ${secret}`);
    expect(fake.requests.length).toBe(1);
    expect(JSON.stringify(ws.messages)).not.toContain(secret);
    expect(logs.join("")).toContain("agentwire listening");
    // The failure is logged (operators must see a bad key), and still without the key.
    expect(logs.join("")).toContain("turn failed upstream");
    expect(logs.join("")).not.toContain(secret);
  });
});

describe("OpenAI: cancel reaches the provider", () => {
  const head = openai.sse([{ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] }], false);
  const slow = (): Handler => drip(head, (i) => openai.sse([openai.text(`w${i} `)], false), 5);

  /** Waits for a few tokens, sends `message`, and returns how long the upstream socket took to close. */
  async function interruptStream(ws: TestClient, fake: FakeProvider, message: unknown): Promise<number> {
    await ws.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 3, "3 tokens");
    const sentAt = performance.now();
    ws.send(message);
    const closedAt = await (await fake.request(0)).socketClosed;
    expect(closedAt).toBeGreaterThanOrEqual(sentAt);
    return closedAt - sentAt;
  }

  /** The turn ended `reason` with a partial usage counting every token, and nothing of it came later. */
  async function expectCutShort(ws: TestClient, turn: string, reason: string): Promise<void> {
    const end = await ws.waitForTurnEnd(turn);
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn, status: "cancelled", reason });
    ws.send({ type: "ping", id: `after-${turn}` });
    await ws.next("pong", (p) => p.id === `after-${turn}`);
    const mine = logged(ws.messages).filter((e) => "turn" in e && e.turn === turn);
    const tokens = mine.filter((e) => e.type === "token").length;
    expect(mine.map((e) => e.type)).toEqual(["turn_start", ...times(tokens, "token"), "usage", "turn_end"]);
    expect(mine.at(-2)).toMatchObject({ type: "usage", outputTokens: tokens, partial: true });
  }

  it("cancel closes the upstream socket within 50 ms", async () => {
    const { fake, ws } = await setup([slow()]);
    ws.send({ type: "input", text: "tell me a long story" });
    expect(await interruptStream(ws, fake, { type: "cancel", id: "stop" })).toBeLessThan(50);
    await expectCutShort(ws, "t1", "cancelled");
    expect(fake.requests.length).toBe(1);
  });

  it("input with interrupt closes the upstream socket within 50 ms; the next request carries the partial answer", async () => {
    const { fake, ws } = await setup([slow(), stream(fixture("openai-chat-text.sse"))]);
    ws.send({ type: "input", text: "tell me a long story" });
    expect(await interruptStream(ws, fake, { type: "input", text: "never mind", interrupt: true })).toBeLessThan(50);
    await expectCutShort(ws, "t1", "interrupted");
    expect(await ws.waitForTurnEnd("t2")).toMatchObject({ status: "completed", reason: "stop" });
    expect(turnText(ws.messages, "t2")).toBe(FIXTURE_TEXT);
    expect(fake.requests[1]?.body.messages).toEqual([
      { role: "user", content: "tell me a long story" },
      { role: "assistant", content: turnText(ws.messages, "t1") },
      { role: "user", content: "never mind" },
    ]);
  });
});
