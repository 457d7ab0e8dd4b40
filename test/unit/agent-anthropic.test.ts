// AnthropicAgent against a fake Messages API server: exact sink sequences, request bodies, overload, drops, cancel.
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, type ToolDeclaration } from "@agentwire/protocol";
import { AgentError, type HistoryMessage, type StepRequest } from "../../src/engine/agent.js";
import { AnthropicAgent, type AnthropicAgentOptions } from "../../src/agents/anthropic.js";
import { FakeUpstream, type Reply, type Split, fixture, variants } from "../helpers/fake-upstream.js";
import { type SinkCall, recordSteps } from "../helpers/step-recorder.js";

const KEY = "sk-ant-api03-TESTKEY0123456789";
const TOOL_ID = "toolu_01KFbKqPYSuAKujiL6mTfzYA";

let fake: FakeUpstream | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(replies: Reply[], options: Partial<AnthropicAgentOptions> = {}) {
  fake = await FakeUpstream.start(replies);
  const agent = new AnthropicAgent({
    baseUrl: fake.url,
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

const TEXT_CALLS: SinkCall[] = [
  ["usage", 12, 1],
  ["text", "Hello"],
  ["text", "! Streams"],
  ["usage", 12, 2],
  ["text", " resume"],
  ["usage", 12, 3],
  ["text", " from"],
  ["usage", 12, 4],
  ["text", " the"],
  ["usage", 12, 5],
  ["text", " last"],
  ["usage", 12, 6],
  ["text", " event"],
  ["usage", 12, 7],
  ["text", " id"],
  ["usage", 12, 8],
  ["text", "."],
  ["usage", 12, 9],
  ["usage", 12, 11],
];

describe("text stream", () => {
  const splits: Array<[string, Split]> = [
    ["plain", "whole"],
    ["plain", "bytes"],
    ["crlf", { random: 11, pieces: 30 }],
    ["mixed", "bytes"],
    ["mixed", { random: 12, pieces: 70 }],
  ];
  it.each(splits)("%s line ends, chunks %j: exact sink calls, finish stop", async (variant, split) => {
    const body = variants[variant as keyof typeof variants](fixture("anthropic-messages-text.sse"));
    const { agent } = await setup([{ stream: body, split }]);
    const rec = recordSteps();
    expect(await agent.step(request(), rec.sink, new AbortController().signal)).toEqual({ finish: "stop", toolCalls: [] });
    expect(rec.calls).toEqual(TEXT_CALLS);
    expect(rec.text()).toBe("Hello! Streams resume from the last event id.");
  });

  it("sends the Messages API request: headers, model, max_tokens, system, messages, stream", async () => {
    const { agent, fake } = await setup([{ stream: fixture("anthropic-messages-text.sse") }], { model: "claude-test", maxTokens: 1234 });
    await agent.step(request({ system: "Be brief." }), recordSteps().sink, new AbortController().signal);
    const sent = fake.requests[0];
    expect([sent?.method, sent?.url]).toEqual(["POST", "/v1/messages"]);
    expect([sent?.headers["x-api-key"], sent?.headers["anthropic-version"], sent?.headers.authorization]).toEqual([KEY, "2023-06-01", undefined]);
    expect(sent?.body).toEqual({
      model: "claude-test",
      max_tokens: 1234,
      system: "Be brief.",
      messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }],
      stream: true,
    });
  });
});

describe("options", () => {
  it("trims history to the budget before rendering it", async () => {
    const history: HistoryMessage[] = [
      { role: "user", text: "x".repeat(400) },
      { role: "assistant", text: "y".repeat(400) },
      { role: "user", text: "short" },
      { role: "assistant", text: "ok" },
      { role: "user", text: "Hi" },
    ];
    const { agent, fake } = await setup([{ stream: fixture("anthropic-messages-text.sse") }], { historyBudget: { maxTokens: 20 } });
    await agent.step(request({ history }), recordSteps().sink, new AbortController().signal);
    expect(fake.requests[0]?.body.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "short" }] },
      { role: "assistant", content: [{ type: "text", text: "ok" }] },
      { role: "user", content: [{ type: "text", text: "Hi" }] },
    ]);
  });

  it("rejects impossible options at construction", () => {
    expect(() => new AnthropicAgent({ apiKey: "k", maxTokens: 0 })).toThrow(RangeError);
    expect(() => new AnthropicAgent({ apiKey: "k", historyBudget: { maxTokens: -1 } })).toThrow(RangeError);
    expect(() => new AnthropicAgent({ apiKey: "k", timeouts: { firstByteMs: Number.NaN } })).toThrow(RangeError);
  });
});

describe("tool use", () => {
  it("streams a text block then a tool_use block and returns the call with parsed input", async () => {
    const { agent } = await setup([{ stream: variants.mixed(fixture("anthropic-messages-tool-use.sse")), split: "bytes" }]);
    const rec = recordSteps();
    const result = await agent.step(request(), rec.sink, new AbortController().signal);
    expect(rec.calls).toEqual([
      ["usage", 849, 1],
      ["text", "Let me"],
      ["text", " check the weather."],
      ["usage", 849, 2],
      ["toolCallStart", TOOL_ID, "get_weather"],
      ["toolCallDelta", TOOL_ID, '{"city": '],
      ["usage", 849, 3],
      ["toolCallDelta", TOOL_ID, '"Osa'],
      ["usage", 849, 4],
      ["toolCallDelta", TOOL_ID, 'ka"}'],
      ["usage", 849, 5],
      ["usage", 849, 47],
    ]);
    expect(result).toEqual({ finish: "tool_calls", toolCalls: [{ id: TOOL_ID, name: "get_weather", args: { city: "Osaka" } }] });
  });

  it("renders tool calls and results as blocks, merges same-role messages, and declares tools", async () => {
    const tools: ToolDeclaration[] = [{ name: "get_weather", description: "Weather", parameters: { type: "object", properties: {} } }];
    const history: HistoryMessage[] = [
      { role: "user", text: "Weather in Osaka?" },
      { role: "user", text: "And Kyoto." },
      {
        role: "assistant",
        text: "Checking.",
        toolCalls: [
          { id: "t1", name: "get_weather", args: { city: "Osaka" } },
          { id: "t2", name: "get_weather", args: "{broken" },
        ],
      },
      { role: "tool", callId: "t1", name: "get_weather", output: "22C", isError: false },
      { role: "tool", callId: "t2", name: "get_weather", output: "invalid arguments", isError: true },
      { role: "user", text: "Well?" },
    ];
    const { agent, fake } = await setup([{ stream: fixture("anthropic-messages-text.sse") }]);
    await agent.step(request({ history, tools }), recordSteps().sink, new AbortController().signal);
    expect(fake.requests[0]?.body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "Weather in Osaka?" },
          { type: "text", text: "And Kyoto." },
        ],
      },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Checking." },
          { type: "tool_use", id: "t1", name: "get_weather", input: { city: "Osaka" } },
          { type: "tool_use", id: "t2", name: "get_weather", input: {} },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "t1", content: "22C", is_error: false },
          { type: "tool_result", tool_use_id: "t2", content: "invalid arguments", is_error: true },
          { type: "text", text: "Well?" },
        ],
      },
    ]);
    expect(fake.requests[0]?.body.tools).toEqual([{ name: "get_weather", description: "Weather", input_schema: { type: "object", properties: {} } }]);
    expect(fake.requests[0]?.body).not.toHaveProperty("system");
  });

  it("tolerates pings anywhere, unknown events and unknown delta types; maps max_tokens", async () => {
    const ev = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    const body = [
      ev("ping", { type: "ping" }),
      ev("message_start", { type: "message_start", message: { usage: { input_tokens: 3, cache_read_input_tokens: 4, output_tokens: 0 } } }),
      ev("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } }),
      ev("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "hmm" } }),
      ev("future_event", { type: "future_event", whatever: true }),
      ev("content_block_start", { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }),
      ev("ping", { type: "ping" }),
      ev("content_block_delta", { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "Hi" } }),
      ev("content_block_delta", { type: "content_block_delta", index: 1, delta: { type: "brand_new_delta", x: 1 } }),
      ev("message_delta", { type: "message_delta", delta: { stop_reason: "max_tokens" }, usage: { output_tokens: 9 } }),
      ev("message_stop", { type: "message_stop" }),
    ].join("");
    const { agent } = await setup([{ stream: body }]);
    const rec = recordSteps();
    expect(await agent.step(request(), rec.sink, new AbortController().signal)).toEqual({ finish: "max_tokens", toolCalls: [] });
    expect(rec.calls).toEqual([
      ["usage", 7, 0],
      ["text", "Hi"],
      ["usage", 7, 1],
      ["usage", 7, 9],
    ]);
  });
});

describe("failures", () => {
  it("throws upstream_overloaded (retryable) for an error event after output, without retrying", async () => {
    const { agent, fake } = await setup([{ stream: fixture("anthropic-messages-overloaded-midstream.sse"), split: "bytes" }]);
    const rec = recordSteps();
    const err = await agent.step(request(), rec.sink, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect([(err as AgentError).code, (err as AgentError).retryable]).toEqual([ErrorCode.UpstreamOverloaded, true]);
    expect(fake.requests).toHaveLength(1);
    expect(rec.calls).toEqual([
      ["usage", 20, 1],
      ["text", "Partial"],
    ]);
  });

  it("retries an overload error that came before any output; the text appears once", async () => {
    const overloaded = fixture("anthropic-messages-overloaded-midstream.sse");
    const early = overloaded.replace(/event: content_block_delta\n.*\n\n/, "");
    const { agent, fake } = await setup([{ stream: early }, { stream: fixture("anthropic-messages-text.sse") }]);
    const rec = recordSteps();
    expect(await agent.step(request(), rec.sink, new AbortController().signal)).toEqual({ finish: "stop", toolCalls: [] });
    expect(fake.requests).toHaveLength(2);
    expect(rec.calls).toEqual([["usage", 20, 1], ...TEXT_CALLS]);
  });

  it("maps other error events to upstream_error", async () => {
    const body = 'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error","message":"bad"}}\n\n';
    const { agent, fake } = await setup([{ stream: body }]);
    const err = (await agent.step(request(), recordSteps().sink, new AbortController().signal).catch((e: unknown) => e)) as AgentError;
    expect([err.code, err.retryable, fake.requests.length]).toEqual([ErrorCode.UpstreamError, false, 1]);
  });

  it("retries HTTP 529 with retry-after, then streams", async () => {
    const { agent, fake } = await setup([
      { status: 529, headers: { "retry-after": "0" }, body: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}' },
      { stream: fixture("anthropic-messages-text.sse") },
    ]);
    const rec = recordSteps();
    await agent.step(request(), rec.sink, new AbortController().signal);
    expect(fake.requests).toHaveLength(2);
    expect(rec.calls).toEqual(TEXT_CALLS);
  });

  it("returns incomplete when the stream ends or drops without message_stop", async () => {
    const tool = fixture("anthropic-messages-tool-use.sse");
    for (const finish of ["end", "destroy"] as const) {
      const { agent } = await setup([{ stream: tool.slice(0, tool.indexOf("event: message_stop")), finish }]);
      const rec = recordSteps();
      expect(await agent.step(request(), rec.sink, new AbortController().signal)).toEqual({ finish: "incomplete", toolCalls: [] });
      expect(rec.calls.at(-1)).toEqual(["usage", 849, 47]);
      await fake?.close();
      fake = undefined;
    }
  });

  it("fails with upstream_timeout when the first byte is slow", async () => {
    const { agent } = await setup([{ stream: fixture("anthropic-messages-text.sse"), firstByteDelayMs: 5000 }], {
      timeouts: { connectMs: 1000, firstByteMs: 40, idleMs: 1000 },
    });
    const err = (await agent.step(request(), recordSteps().sink, new AbortController().signal).catch((e: unknown) => e)) as AgentError;
    expect([err.code, err.retryable]).toEqual([ErrorCode.UpstreamTimeout, true]);
  });
});

describe("cancel", () => {
  it("closes the upstream socket within 50 ms of the abort, mid-stream", async () => {
    const text = fixture("anthropic-messages-text.sse");
    const { agent, fake } = await setup([{ stream: text.slice(0, text.indexOf('" last"')), finish: "hold" }]);
    const ac = new AbortController();
    let abortedAt = 0;
    const rec = recordSteps((call) => {
      if (call[0] === "text" && call[1] === " from") {
        abortedAt = performance.now();
        ac.abort(new Error("user cancel"));
      }
    });
    await expect(agent.step(request(), rec.sink, ac.signal)).rejects.toThrow("user cancel");
    const closedAt = await fake.request(0).then((r) => r.socketClosed);
    expect(closedAt - abortedAt).toBeLessThan(50);
    expect(rec.calls).toEqual(TEXT_CALLS.slice(0, 8));
  });
});
