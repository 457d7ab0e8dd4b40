// OpenTelemetry traces: off unless the application registers an SDK; then one span tree per turn, and traceparent upstream.
import { SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoTools } from "../../src/agents/demo-tools.js";
import { configFrom } from "../../src/config.js";
import { silentLogger } from "../../src/logger.js";
import { startServer } from "../../src/server.js";
import { FakeProvider, openai, respond, stream } from "../helpers/fake-provider.js";
import { TestClient } from "../helpers/ws-client.js";

/** A provider that asks for the calculator, then answers with text. */
function calculatorScript() {
  return [
    stream(openai.sse([...openai.toolCall(0, "call_1", "calculator", ['{"expression":', '"6*7"}']), openai.finish("tool_calls"), openai.usage(10, 5)])),
    stream(openai.sse([openai.text("it is 42"), openai.finish("stop"), openai.usage(20, 3)])),
  ];
}

/** Runs one turn through a server with the openai agent and the demo tools; returns the session id, turn_end and what the provider received. */
async function runTurn(script = calculatorScript()): Promise<{ sessionId: string; end: Record<string, unknown>; fake: FakeProvider }> {
  const fake = await FakeProvider.start(script);
  const config = configFrom({ PORT: 0, HOST: "127.0.0.1", LOG_LEVEL: "silent", AGENTWIRE_AUTH: "none", AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEY: "k", AGENTWIRE_MODEL: "m" });
  const server = await startServer({ config, logger: silentLogger, tools: demoTools() });
  try {
    const s = (await (await fetch(`http://127.0.0.1:${server.port}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
    const ws = await TestClient.connect(TestClient.sessionUrl(`ws://127.0.0.1:${server.port}`, s));
    ws.send({ type: "input", text: "what is 6 * 7" });
    const end = (await ws.waitForTurnEnd()) as unknown as Record<string, unknown>;
    ws.close();
    return { sessionId: s.sessionId, end, fake };
  } finally {
    await server.close();
    await fake.close();
  }
}

/** An HrTime in nanoseconds (a bigint: exact). */
function ns([seconds, nanos]: [number, number]): bigint {
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

/** `00-<traceId>-<spanId>-<flags>` parsed, or undefined. */
function parseTraceparent(header: unknown): { traceId: string; spanId: string; flags: string } | undefined {
  const m = typeof header === "string" ? /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(header) : null;
  return m ? { traceId: m[1] as string, spanId: m[2] as string, flags: m[3] as string } : undefined;
}

describe("tracing without an SDK", () => {
  it("sends no traceparent and the turn works as ever", async () => {
    trace.disable();
    context.disable();
    propagation.disable();
    const { end, fake } = await runTurn();
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    expect(fake.requests).toHaveLength(2);
    for (const r of fake.requests) {
      expect(r.headers.traceparent).toBeUndefined();
      expect(r.headers.tracestate).toBeUndefined();
    }
  });
});

describe("tracing with an SDK registered", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

  beforeAll(() => {
    trace.setGlobalTracerProvider(provider);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  });

  afterAll(async () => {
    trace.disable();
    context.disable();
    propagation.disable();
    await provider.shutdown();
  });

  it("a turn with a server tool: one agentwire.turn root, a CLIENT span per upstream request carrying its traceparent, a tool span", async () => {
    const { sessionId, end, fake } = await runTurn();
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    const spans = exporter.getFinishedSpans();
    const byName = (name: string): ReadableSpan[] => spans.filter((s) => s.name === name);

    const turns = byName("agentwire.turn");
    expect(turns).toHaveLength(1);
    const turn = turns[0] as ReadableSpan;
    const traceId = turn.spanContext().traceId;
    expect(turn.parentSpanContext).toBeUndefined();
    expect(turn.kind).toBe(SpanKind.INTERNAL);
    expect(turn.status.code).toBe(SpanStatusCode.UNSET);
    expect(turn.attributes).toMatchObject({
      "agentwire.session_id": sessionId,
      "agentwire.turn_id": end.turn,
      "gen_ai.request.model": "m",
      "agentwire.turn.status": "completed",
      "agentwire.turn.reason": "stop",
      "gen_ai.usage.input_tokens": 30,
      "gen_ai.usage.output_tokens": 8,
      "agentwire.turn.steps": 2,
      "agentwire.turn.tool_calls": 1,
    });
    expect(typeof turn.attributes["agentwire.identity"]).toBe("string");
    expect(turn.attributes["agentwire.queue_wait_ms"]).toBeGreaterThanOrEqual(0);

    const upstream = byName("chat m");
    expect(upstream).toHaveLength(2);
    const tools = byName("agentwire.tool calculator");
    expect(tools).toHaveLength(1);
    // Exactly this tree: nothing else was recorded.
    expect(spans).toHaveLength(4);
    for (const s of [...upstream, ...tools]) {
      expect(s.spanContext().traceId).toBe(traceId);
      expect(s.parentSpanContext?.spanId).toBe(turn.spanContext().spanId);
    }
    for (const s of upstream) {
      expect(s.kind).toBe(SpanKind.CLIENT);
      expect(s.attributes).toMatchObject({ "http.response.status_code": 200, "agentwire.attempt": 1, "gen_ai.request.model": "m", "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat" });
      expect(s.status.code).toBe(SpanStatusCode.UNSET);
    }

    // Each provider request carried the traceparent of its own upstream span.
    expect(fake.requests).toHaveLength(2);
    const sent = fake.requests.map((r) => parseTraceparent(r.headers.traceparent));
    for (const p of sent) expect(p).toMatchObject({ traceId, flags: "01" });
    expect(sent.map((p) => p?.spanId).sort()).toEqual(upstream.map((s) => s.spanContext().spanId).sort());
    // Step order: the first request's span ended before the tool ran, the second's started after it. Span times
    // mix a millisecond clock origin with performance.now(), so they are compared to within a millisecond.
    const tool = tools[0] as ReadableSpan;
    const first = upstream.find((s) => s.spanContext().spanId === sent[0]?.spanId) as ReadableSpan;
    const second = upstream.find((s) => s.spanContext().spanId === sent[1]?.spanId) as ReadableSpan;
    const MS = 1_000_000n;
    expect(ns(first.endTime)).toBeLessThanOrEqual(ns(tool.startTime) + MS);
    expect(ns(second.startTime)).toBeGreaterThanOrEqual(ns(tool.endTime) - MS);

    expect(tool.attributes).toMatchObject({ "gen_ai.tool.name": "calculator", "gen_ai.tool.call.id": "call_1", "agentwire.tool.executor": "server", "agentwire.tool.is_error": false });
    expect(tool.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("a failed turn: its span and the upstream span end with status ERROR and the error code", async () => {
    exporter.reset();
    const { end, fake } = await runTurn([respond(400, JSON.stringify({ error: { message: "bad request", type: "invalid_request_error" } }))]);
    expect(end).toMatchObject({ status: "failed" });
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name).sort()).toEqual(["agentwire.turn", "chat m"]);
    const turn = spans.find((s) => s.name === "agentwire.turn") as ReadableSpan;
    const upstream = spans.find((s) => s.name === "chat m") as ReadableSpan;
    expect(turn.status).toEqual({ code: SpanStatusCode.ERROR, message: end.reason });
    expect(turn.attributes).toMatchObject({ "agentwire.turn.status": "failed", "agentwire.turn.reason": end.reason });
    expect(upstream.status.code).toBe(SpanStatusCode.ERROR);
    expect(upstream.attributes).toMatchObject({ "http.response.status_code": 400, "agentwire.attempt": 1, "error.type": end.reason });
    expect(upstream.parentSpanContext?.spanId).toBe(turn.spanContext().spanId);
    expect(parseTraceparent(fake.requests[0]?.headers.traceparent)?.spanId).toBe(upstream.spanContext().spanId);
  });
});
