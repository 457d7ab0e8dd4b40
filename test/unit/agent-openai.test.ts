// OpenAIAgent against a fake Chat Completions server: exact sink sequences, request bodies, retries, failures, cancel.
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, type ToolDeclaration } from "@agentwire/protocol";
import { AgentError, type HistoryMessage, type StepRequest } from "../../src/engine/agent.js";
import { estimateTokens } from "../../src/agents/history-budget.js";
import { OpenAIAgent, type OpenAIAgentOptions } from "../../src/agents/openai.js";
import { FakeUpstream, type Reply, type Split, fixture, variants } from "../helpers/fake-upstream.js";
import { type SinkCall, recordSteps } from "../helpers/step-recorder.js";

const KEY = "sk-proj-TESTKEY0123456789";
const TEXT_DELTAS = ["Sessions", " keep", " the", " conversation", " going", ",", " even", " when", " the", " network", " blinks", "."];

let fake: FakeUpstream | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(replies: Reply[], options: Partial<OpenAIAgentOptions> = {}) {
  fake = await FakeUpstream.start(replies);
  const agent = new OpenAIAgent({
    baseUrl: `${fake.url}/v1/`,
    apiKey: KEY,
    timeouts: { connectMs: 1000, firstByteMs: 1000, idleMs: 1000 },
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 50 },
    ...options,
  });
  return { agent, fake };
}

function request(overrides: Partial<StepRequest> = {}): StepRequest {
  return {
    sessionId: "s1",
    turnId: "t1",
    model: undefined,
    system: undefined,
    history: [{ role: "user", text: "Hi" }],
    tools: [],
    step: 0,
    ...overrides,
  };
}

/** Each delta followed by the running usage estimate, as the agent reports them. */
function withEstimates(deltas: Array<["text", string] | ["toolCallDelta", string, string]>, input: number, from = 0): SinkCall[] {
  return deltas.flatMap((d, i): SinkCall[] => [d, ["usage", input, from + i + 1]]);
}

/** The agent's input estimate for what it actually sent. */
const inputEstimate = (f: FakeUpstream, n = 0): number => estimateTokens(f.requests[n]?.bodyText ?? "");

describe("text stream", () => {
  const splits: Array<[string, string, Split]> = [
    ["plain", "whole", "whole"],
    ["plain", "bytes", "bytes"],
    ["crlf", "random", { random: 3, pieces: 40 }],
    ["cr", "random", { random: 4, pieces: 25 }],
    ["mixed", "bytes", "bytes"],
    ["mixed", "random", { random: 5, pieces: 60 }],
  ];
  it.each(splits)("%s line ends, %s chunks: exact sink calls, finish stop", async (variant, _label, split) => {
    const body = variants[variant as keyof typeof variants](fixture("openai-chat-text.sse"));
    const { agent, fake } = await setup([{ stream: body, split }]);
    const rec = recordSteps();
    const result = await agent.step(request(), rec.sink, new AbortController().signal);
    expect(result).toEqual({ finish: "stop", toolCalls: [] });
    const e = inputEstimate(fake);
    expect(rec.calls).toEqual([...withEstimates(TEXT_DELTAS.map((t) => ["text", t]), e), ["usage", 16, 12]]);
    expect(rec.text()).toBe("Sessions keep the conversation going, even when the network blinks.");
  });

  it("sends model, messages, stream and include_usage, with bearer auth, and no tools key when there are none", async () => {
    const { agent, fake } = await setup([{ stream: fixture("openai-chat-text.sse") }], { model: "gpt-test" });
    await agent.step(request({ system: "Be brief." }), recordSteps().sink, new AbortController().signal);
    const sent = fake.requests[0];
    expect([sent?.method, sent?.url]).toEqual(["POST", "/v1/chat/completions"]);
    expect(sent?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(sent?.headers["content-type"]).toBe("application/json");
    expect(sent?.body).toEqual({
      model: "gpt-test",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it("sends no Authorization header when the key is empty (local servers)", async () => {
    const { agent, fake } = await setup([{ stream: fixture("openai-chat-text.sse") }], { apiKey: "" });
    await agent.step(request(), recordSteps().sink, new AbortController().signal);
    expect(fake.requests[0]?.headers).not.toHaveProperty("authorization");
  });

  it("prefers the request's model over the configured one", async () => {
    const { agent, fake } = await setup([{ stream: fixture("openai-chat-text.sse") }], { model: "gpt-default" });
    await agent.step(request({ model: "gpt-chosen" }), recordSteps().sink, new AbortController().signal);
    expect(fake.requests[0]?.body.model).toBe("gpt-chosen");
  });
});

describe("tool calls", () => {
  it("streams two parallel calls by index and returns them with parsed arguments", async () => {
    const { agent, fake } = await setup([{ stream: variants.crlf(fixture("openai-chat-tool-calls.sse")), split: "bytes" }]);
    const rec = recordSteps();
    const result = await agent.step(request(), rec.sink, new AbortController().signal);
    const w = "call_F9ZaqPWo69u0urxAhVt8meDW";
    const t = "call_Q2mWcLx0Ab7rT1uZkP9sVh3e";
    const e = inputEstimate(fake);
    expect(rec.calls).toEqual([
      ["toolCallStart", w, "get_weather"],
      ...withEstimates(
        ['{"', "city", '":"', "Osaka", '","', "unit", '":"', "c", '"}'].map((d): ["toolCallDelta", string, string] => ["toolCallDelta", w, d]),
        e,
      ),
      ["toolCallStart", t, "get_time"],
      ...withEstimates(
        ['{"tz":', '"Asia/Tokyo"}'].map((d): ["toolCallDelta", string, string] => ["toolCallDelta", t, d]),
        e,
        9,
      ),
      ["usage", 61, 31],
    ]);
    expect(result).toEqual({
      finish: "tool_calls",
      toolCalls: [
        { id: w, name: "get_weather", args: { city: "Osaka", unit: "c" } },
        { id: t, name: "get_time", args: { tz: "Asia/Tokyo" } },
      ],
    });
  });

  it("renders history with tool calls and results, and declares tools", async () => {
    const tools: ToolDeclaration[] = [
      { name: "get_weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string" } } } },
    ];
    const history: HistoryMessage[] = [
      { role: "user", text: "Weather in Osaka and Kyoto?" },
      {
        role: "assistant",
        text: "",
        toolCalls: [
          { id: "c1", name: "get_weather", args: { city: "Osaka" } },
          { id: "c2", name: "get_weather", args: '{"city": Kyo' },
        ],
      },
      { role: "tool", callId: "c1", name: "get_weather", output: "22C", isError: false },
      { role: "tool", callId: "c2", name: "get_weather", output: "bad arguments", isError: true },
      { role: "assistant", text: "Osaka is 22C." },
      { role: "user", text: "Thanks" },
    ];
    const { agent, fake } = await setup([{ stream: fixture("openai-chat-text.sse") }]);
    await agent.step(request({ system: "sys", history, tools }), recordSteps().sink, new AbortController().signal);
    expect(fake.requests[0]?.body.messages).toEqual([
      { role: "system", content: "sys" },
      { role: "user", content: "Weather in Osaka and Kyoto?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city":"Osaka"}' } },
          { id: "c2", type: "function", function: { name: "get_weather", arguments: '{"city": Kyo' } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: "22C" },
      { role: "tool", tool_call_id: "c2", content: "Error: bad arguments" },
      { role: "assistant", content: "Osaka is 22C." },
      { role: "user", content: "Thanks" },
    ]);
    expect(fake.requests[0]?.body.tools).toEqual([
      {
        type: "function",
        function: { name: "get_weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string" } } } },
      },
    ]);
  });

  it("keeps invalid JSON arguments as the raw string, reads usage from `choices: null`, and treats no-argument calls as {}", async () => {
    const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
    const body = [
      chunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "a", type: "function", function: { name: "f", arguments: "{oops" } }] } }] }),
      chunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: "b", type: "function", function: { name: "g", arguments: "" } }] } }] }),
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }] }),
      chunk({ choices: null, usage: { prompt_tokens: 5, completion_tokens: 3 } }),
      "data: [DONE]\n\n",
    ].join("");
    const { agent, fake } = await setup([{ stream: body }]);
    const rec = recordSteps();
    const result = await agent.step(request(), rec.sink, new AbortController().signal);
    expect(rec.calls).toEqual([
      ["toolCallStart", "a", "f"],
      ["toolCallDelta", "a", "{oops"],
      ["usage", inputEstimate(fake), 1],
      ["toolCallStart", "b", "g"],
      ["usage", 5, 3],
    ]);
    expect(result).toEqual({
      finish: "tool_calls",
      toolCalls: [
        { id: "a", name: "f", args: "{oops" },
        { id: "b", name: "g", args: {} },
      ],
    });
  });
});

describe("failures", () => {
  it("returns incomplete, never stop, when the stream ends or drops before [DONE]", async () => {
    const full = fixture("openai-chat-text.sse");
    const cut = full.slice(0, full.indexOf("data: [DONE]"));
    for (const finish of ["end", "destroy"] as const) {
      const { agent } = await setup([{ stream: cut, finish }]);
      const rec = recordSteps();
      expect(await agent.step(request(), rec.sink, new AbortController().signal)).toEqual({ finish: "incomplete", toolCalls: [] });
      expect(rec.text()).toBe(TEXT_DELTAS.join(""));
      await fake?.close();
      fake = undefined;
    }
    const tools = fixture("openai-chat-tool-calls.sse");
    const { agent } = await setup([{ stream: tools.slice(0, tools.indexOf("data: [DONE]")), finish: "destroy" }]);
    expect(await agent.step(request(), recordSteps().sink, new AbortController().signal)).toEqual({ finish: "incomplete", toolCalls: [] });
  });

  it("maps finish_reason length and content_filter", async () => {
    const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
    for (const [reason, finish] of [
      ["length", "max_tokens"],
      ["content_filter", "content_filter"],
    ]) {
      const body = `${chunk({ choices: [{ index: 0, delta: { content: "x" }, finish_reason: reason }] })}data: [DONE]\n\n`;
      const { agent } = await setup([{ stream: body }]);
      expect(await agent.step(request(), recordSteps().sink, new AbortController().signal)).toEqual({ finish, toolCalls: [] });
      await fake?.close();
      fake = undefined;
    }
  });

  it("throws the mapped AgentError for an error object mid-stream, without retrying after output", async () => {
    const first = fixture("openai-chat-text.sse").split("\n\n").slice(0, 3).join("\n\n");
    const body = `${first}\n\ndata: {"error":{"message":"The server had an error (key ${KEY})","type":"server_error"}}\n\n`;
    const { agent, fake } = await setup([{ stream: body }]);
    const rec = recordSteps();
    const err = await agent.step(request(), rec.sink, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect([(err as AgentError).code, fake.requests.length, rec.text()]).toEqual([ErrorCode.UpstreamError, 1, "Sessions keep"]);
    expect((err as AgentError).message).toBe("upstream error (server_error): The server had an error (key [redacted])");
  });

  it("retries a mid-stream overload that came before any output, and shows the text once", async () => {
    const { agent, fake } = await setup([
      { stream: 'data: {"error":{"message":"busy","type":"overloaded_error"}}\n\n' },
      { stream: fixture("openai-chat-text.sse") },
    ]);
    const rec = recordSteps();
    expect(await agent.step(request(), rec.sink, new AbortController().signal)).toEqual({ finish: "stop", toolCalls: [] });
    expect(fake.requests).toHaveLength(2);
    expect(rec.text()).toBe(TEXT_DELTAS.join(""));
  });

  it("retries 429 with retry-after, then streams: two attempts, output once", async () => {
    const { agent, fake } = await setup([
      { status: 429, headers: { "retry-after": "0.01" }, body: '{"error":{"type":"rate_limit_exceeded","message":"Rate limit"}}' },
      { stream: fixture("openai-chat-text.sse"), split: { random: 9, pieces: 20 } },
    ]);
    const rec = recordSteps();
    await agent.step(request(), rec.sink, new AbortController().signal);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]?.bodyText).toBe(fake.requests[0]?.bodyText);
    expect(rec.calls.filter((c) => c[0] === "text").map((c) => c[1])).toEqual(TEXT_DELTAS);
  });

  it("fails with upstream_timeout when the first byte is slow", async () => {
    const { agent } = await setup([{ stream: fixture("openai-chat-text.sse"), firstByteDelayMs: 5000 }], {
      timeouts: { connectMs: 1000, firstByteMs: 40, idleMs: 1000 },
    });
    const err = await agent.step(request(), recordSteps().sink, new AbortController().signal).catch((e: unknown) => e);
    expect([(err as AgentError).code, (err as AgentError).retryable]).toEqual([ErrorCode.UpstreamTimeout, true]);
  });
});

describe("cancel", () => {
  it("closes the upstream socket within 50 ms and keeps the partial usage", async () => {
    const body = fixture("openai-chat-text.sse");
    const { agent, fake } = await setup([{ stream: body.slice(0, body.indexOf(" conversation")), finish: "hold" }]);
    const ac = new AbortController();
    let abortedAt = 0;
    const rec = recordSteps((call) => {
      if (call[0] === "text" && call[1] === " the") {
        abortedAt = performance.now();
        ac.abort();
      }
    });
    await expect(agent.step(request(), rec.sink, ac.signal)).rejects.toMatchObject({ name: "AbortError" });
    const closedAt = await fake.request(0).then((r) => r.socketClosed);
    expect(closedAt - abortedAt).toBeLessThan(50);
    expect(rec.calls).toEqual(withEstimates(TEXT_DELTAS.slice(0, 3).map((t) => ["text", t]), inputEstimate(fake)));
  });
});
