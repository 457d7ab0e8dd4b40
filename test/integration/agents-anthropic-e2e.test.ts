// Anthropic agent end to end: a real server on port 0 streaming from a fake Messages API upstream to a real ws client.
import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { calculatorTool, clockTool } from "../../src/agents/demo-tools.js";
import { FakeProvider, type Handler, anthropic, drip, gated, respond, stream } from "../helpers/fake-provider.js";
import { fixture } from "../helpers/fake-upstream.js";
import { kinds, providerHarness, times, withoutSeq } from "../helpers/provider-e2e.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

const KEY = "sk-ant-e2e-0123456789";
/** The text that anthropic-messages-text.sse streams. */
const FIXTURE_TEXT = "Hello! Streams resume from the last event id.";
const FIXTURE_EVENTS = fixture("anthropic-messages-text.sse").split(/(?<=\n\n)/);
const SERVER_TOOLS = [calculatorTool, clockTool].map(({ declaration: d }) => ({ name: d.name, description: d.description, input_schema: d.parameters }));
const userText = (text: string) => ({ role: "user", content: [{ type: "text", text }] });

const setup = providerHarness((url, apiKey) => ({ AGENTWIRE_AGENT: "anthropic", ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: apiKey }), KEY);

describe("Anthropic agent through the real server", () => {
  it("text turn: tokens are the fixture's text, exact usage, completed; the body is a Messages request with x-api-key", async () => {
    const { fake, ws } = await setup([stream(fixture("anthropic-messages-text.sse"), { split: { random: 13, pieces: 40 } })]);
    ws.send({ type: "configure", id: "cfg", system: "Be brief." });
    await ws.next("ack", (a) => a.id === "cfg");
    ws.send({ type: "input", text: "Hi" });
    const end = await ws.waitForTurnEnd();
    expect(turnText(ws.messages, "t1")).toBe(FIXTURE_TEXT);
    const events = logged(ws.messages);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(kinds(ws.messages)).toEqual(["turn_start", ...times(9, "token"), "usage", "turn_end"]);
    expect(withoutSeq(events.at(-2) as ServerMessage & { seq: number })).toEqual({ type: "usage", turn: "t1", inputTokens: 12, outputTokens: 11, partial: false });
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "completed", reason: "stop" });
    const sent = await fake.request(0);
    expect([fake.requests.length, sent.url, sent.headers["x-api-key"], sent.headers["anthropic-version"], sent.headers.authorization]).toEqual([
      1,
      "/v1/messages",
      KEY,
      "2023-06-01",
      undefined,
    ]);
    expect(sent.body).toEqual({ model: "m", max_tokens: 4096, system: "Be brief.", messages: [userText("Hi")], stream: true, tools: SERVER_TOOLS });
  });

  it("server tool round trip: calculator runs between two upstream requests; the second carries the tool_result block", async () => {
    const { fake, ws } = await setup([
      stream(
        anthropic.sse([
          anthropic.start(30),
          ...anthropic.textBlock(0, ["Let me ", "compute."]),
          ...anthropic.toolUseBlock(1, "toolu_calc1", "calculator", ["", '{"expr', 'ession": "12', ' * 12"}']),
          ...anthropic.stop("tool_use", 24),
        ]),
        { split: "bytes" },
      ),
      stream(anthropic.sse([anthropic.start(60), ...anthropic.textBlock(0, ["144."]), ...anthropic.stop("end_turn", 3)])),
    ]);
    ws.send({ type: "input", text: "what is 12 * 12?" });
    await ws.waitForTurnEnd();
    expect(kinds(ws.messages)).toEqual(["turn_start", "token", "token", "tool:start", ...times(3, "tool:delta"), "tool:ready", "tool:result", "token", "usage", "turn_end"]);
    const tool = { type: "tool", turn: "t1", callId: "toolu_calc1", name: "calculator", executor: "server" };
    expect(logged(ws.messages).filter((e) => e.type === "tool").map(withoutSeq)).toEqual([
      { ...tool, phase: "start" },
      { ...tool, phase: "delta", argsDelta: '{"expr' },
      { ...tool, phase: "delta", argsDelta: 'ession": "12' },
      { ...tool, phase: "delta", argsDelta: ' * 12"}' },
      { ...tool, phase: "ready", args: { expression: "12 * 12" } },
      { ...tool, phase: "result", output: { value: 144 }, isError: false },
    ]);
    expect(turnText(ws.messages, "t1")).toBe("Let me compute.144.");
    expect(logged(ws.messages).at(-2)).toMatchObject({ type: "usage", inputTokens: 90, outputTokens: 27, partial: false });
    expect(fake.requests.length).toBe(2);
    expect(fake.requests[1]?.body).toEqual({
      model: "m",
      max_tokens: 4096,
      messages: [
        userText("what is 12 * 12?"),
        {
          role: "assistant",
          content: [
            { type: "text", text: "Let me compute." },
            { type: "tool_use", id: "toolu_calc1", name: "calculator", input: { expression: "12 * 12" } },
          ],
        },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_calc1", content: '{"value":144}', is_error: false }] },
      ],
      stream: true,
      tools: SERVER_TOOLS,
    });
  });

  it("client tool round trip: declared by configure, answered with tool_result, carried by the next request", async () => {
    const location = { name: "get_location", description: "Where the user is", parameters: { type: "object", properties: {} } };
    const { fake, ws } = await setup([
      stream(anthropic.sse([anthropic.start(80), ...anthropic.toolUseBlock(0, "toolu_loc1", "get_location", [""]), ...anthropic.stop("tool_use", 5)])),
      stream(anthropic.sse([anthropic.start(100), ...anthropic.textBlock(0, ["You are in Osaka."]), ...anthropic.stop("end_turn", 5)])),
    ]);
    ws.send({ type: "configure", id: "cfg", tools: [location] });
    await ws.next("ack", (a) => a.id === "cfg");
    ws.send({ type: "input", text: "where am I?" });
    const ready = await ws.next("tool", (t) => t.phase === "ready");
    expect(withoutSeq(ready)).toEqual({ type: "tool", turn: "t1", callId: "toolu_loc1", phase: "ready", name: "get_location", executor: "client", args: {} });
    expect(fake.requests.length).toBe(1);
    ws.send({ type: "tool_result", callId: "toolu_loc1", output: { city: "Osaka" } });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    expect(kinds(ws.messages)).toEqual(["turn_start", "tool:start", "tool:ready", "tool:result", "token", "usage", "turn_end"]);
    expect(logged(ws.messages).filter((e) => e.type === "tool").map((e) => (e as { executor: string }).executor)).toEqual(times(3, "client"));
    expect(turnText(ws.messages, "t1")).toBe("You are in Osaka.");
    const declared = { name: location.name, description: location.description, input_schema: location.parameters };
    expect(fake.requests[0]?.body.tools).toEqual([...SERVER_TOOLS, declared]);
    expect(fake.requests[1]?.body.messages).toEqual([
      userText("where am I?"),
      { role: "assistant", content: [{ type: "tool_use", id: "toolu_loc1", name: "get_location", input: {} }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_loc1", content: '{"city":"Osaka"}', is_error: false }] },
    ]);
  });
});

describe("Anthropic upstream failures through the real server", () => {
  it("429 with retry-after before the stream, then success: two requests, the wait honoured, the text once", async () => {
    const limited = JSON.stringify({ type: "error", error: { type: "rate_limit_error", message: "Number of request tokens has exceeded your rate limit." } });
    const { fake, ws } = await setup([respond(429, limited, { "retry-after": "1" }), stream(fixture("anthropic-messages-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    expect(kinds(ws.messages)).toEqual(["turn_start", ...times(9, "token"), "usage", "turn_end"]);
    expect(turnText(ws.messages, "t1")).toBe(FIXTURE_TEXT);
    expect(fake.requests.length).toBe(2);
    expect(fake.requests[1]?.bodyText).toBe(fake.requests[0]?.bodyText);
    // Full-jitter backoff alone waits under 500 ms at the defaults: only retry-after explains a second.
    expect((fake.requests[1]?.arrivedAt ?? 0) - (fake.requests[0]?.arrivedAt ?? 0)).toBeGreaterThanOrEqual(990);
  });

  it("overloaded_error mid-stream after a token reached the client: retryable error, turn_end failed, no retry", async () => {
    const overloaded = fixture("anthropic-messages-overloaded-midstream.sse");
    const cut = overloaded.indexOf("event: error");
    const gate = gated(overloaded.slice(0, cut));
    const { fake, ws } = await setup([gate.handler, stream(fixture("anthropic-messages-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    await ws.waitUntil((ms) => turnText(ms, "t1") === "Partial", "the first token");
    gate.release(overloaded.slice(cut), "end");
    const end = await ws.waitForTurnEnd();
    expect(kinds(ws.messages)).toEqual(["turn_start", "token", "error", "usage", "turn_end"]);
    expect(ws.messages.find((m) => m.type === "error")).toMatchObject({ turn: "t1", code: "upstream_overloaded", retryable: true });
    expect(logged(ws.messages).at(-2)).toMatchObject({ type: "usage", inputTokens: 20, outputTokens: 1, partial: true });
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "failed", reason: "upstream_overloaded" });
    expect(fake.requests.length).toBe(1);
  });

  it("the connection dropped without message_stop: turn_end incomplete with the text so far", async () => {
    const gate = gated(FIXTURE_EVENTS.slice(0, 6).join(""));
    const { fake, ws } = await setup([gate.handler, stream(fixture("anthropic-messages-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    await ws.waitUntil((ms) => turnText(ms, "t1") === "Hello! Streams resume", "the first tokens");
    gate.release(`${FIXTURE_EVENTS.slice(6, 8).join("")}event: content_block_delta\ndata: {"ty`, "destroy");
    const end = await ws.waitForTurnEnd();
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "incomplete", reason: "truncated" });
    expect(turnText(ws.messages, "t1")).toBe("Hello! Streams resume from the");
    expect(kinds(ws.messages)).toEqual(["turn_start", ...times(5, "token"), "usage", "turn_end"]);
    expect(logged(ws.messages).at(-2)).toMatchObject({ type: "usage", partial: true });
    expect(fake.requests.length).toBe(1);
  });

  it("error bodies never leak the API key, neither to the client nor into the logs", async () => {
    const secret = "e2e-anthropic-key-5c8e1f0a9b3d";
    const body = JSON.stringify({ type: "error", error: { type: "authentication_error", message: `invalid x-api-key: ${secret}` } });
    const { fake, ws, logs } = await setup([respond(401, body)], secret);
    ws.send({ type: "input", text: "Hi" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: "upstream_error" });
    expect(ws.messages.find((m) => m.type === "error")).toMatchObject({ code: "upstream_error", retryable: false });
    expect(fake.requests[0]?.headers["x-api-key"]).toBe(secret);
    expect(fake.requests.length).toBe(1);
    expect(JSON.stringify(ws.messages)).not.toContain(secret);
    expect(logs.join("")).toContain("agentwire listening");
    // The failure is logged (operators must see a bad key), and still without the key.
    expect(logs.join("")).toContain("turn failed upstream");
    expect(logs.join("")).not.toContain(secret);
  });
});

describe("Anthropic: cancel reaches the provider", () => {
  const head = anthropic.sse([anthropic.start(10), { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }]);
  const piece = (i: number) => anthropic.sse([{ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: `w${i} ` } }]);
  const slow = (): Handler => drip(head, piece, 5);

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
    expect(mine.at(-2)).toMatchObject({ type: "usage", inputTokens: 10, outputTokens: tokens, partial: true });
  }

  it("cancel closes the upstream socket within 50 ms", async () => {
    const { fake, ws } = await setup([slow()]);
    ws.send({ type: "input", text: "tell me a long story" });
    expect(await interruptStream(ws, fake, { type: "cancel", id: "stop" })).toBeLessThan(50);
    await expectCutShort(ws, "t1", "cancelled");
    expect(fake.requests.length).toBe(1);
  });

  it("input with interrupt closes the upstream socket within 50 ms; the next request carries the partial answer", async () => {
    const { fake, ws } = await setup([slow(), stream(fixture("anthropic-messages-text.sse"))]);
    ws.send({ type: "input", text: "tell me a long story" });
    expect(await interruptStream(ws, fake, { type: "input", text: "never mind", interrupt: true })).toBeLessThan(50);
    await expectCutShort(ws, "t1", "interrupted");
    expect(await ws.waitForTurnEnd("t2")).toMatchObject({ status: "completed", reason: "stop" });
    expect(turnText(ws.messages, "t2")).toBe(FIXTURE_TEXT);
    expect(fake.requests[1]?.body.messages).toEqual([
      userText("tell me a long story"),
      { role: "assistant", content: [{ type: "text", text: turnText(ws.messages, "t1") }] },
      userText("never mind"),
    ]);
  });
});
