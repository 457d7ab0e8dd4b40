// /metrics from prom-client: exact counters for a scripted sequence, histograms, process metrics, bounded labels, and
// the one "turn ended" log line per turn.
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import type { Agent, HistoryMessage, StepRequest, StepResult, StepSink } from "../../src/engine/index.js";
import { createLogger } from "../../src/log.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { RawSseConnection } from "../helpers/sse-raw.js";
import { respond, stream } from "../helpers/fake-provider.js";
import { fixture } from "../helpers/fake-upstream.js";
import { providerHarness } from "../helpers/provider-e2e.js";
import { TestClient, logged } from "../helpers/ws-client.js";

/** "hello" (usage 5 in / 1 out), then " world" (5 / 2) and stop; the input "hang" waits after "hello" until aborted. */
class ScriptAgent implements Agent {
  readonly name = "scripted";

  async step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    sink.text("hello");
    sink.usage(5, 1);
    if (lastUser(request.history) === "hang") {
      await new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true }));
    }
    await new Promise((resolve) => setImmediate(resolve));
    sink.text(" world");
    sink.usage(5, 2);
    return { finish: "stop", toolCalls: [] };
  }
}

function lastUser(history: readonly HistoryMessage[]): string {
  for (let i = history.length - 1; i >= 0; i--) {
    const m = history[i];
    if (m?.role === "user") return m.text;
  }
  return "";
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, as far as prom-client writes it: `name{a="b",...} value` lines, # comments. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = (v as string).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** The value of `name` with exactly `labels` (0 when absent, as Prometheus reads a series never written). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  if (found.length > 1) throw new Error(`${name} ${want} appears ${found.length} times`);
  return found[0]?.value ?? 0;
}

/** Every series of `name`, as `label=value,...` -> value. */
function series(samples: Sample[], name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples.filter((x) => x.name === name)) {
    out[Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(",")] = s.value;
  }
  return out;
}

async function scrape(server: TestServer) {
  const res = await fetch(`${server.base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parseMetrics(await res.text());
}

async function until(check: () => Promise<boolean>, label: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const usageOf = (messages: ServerMessage[], turn: string) => messages.find((m): m is Extract<ServerMessage, { type: "usage" }> => m.type === "usage" && m.turn === turn);

describe("/metrics", () => {
  let server: TestServer | undefined;
  const clients: TestClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server?.close();
    server = undefined;
  });

  it("counts exactly what a scripted sequence did, times turns, keeps labels bounded, and logs one line per turn", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split("\n").filter(Boolean));
        done();
      },
    });
    server = await startTestServer(
      { AGENTWIRE_MODEL: "m-default", AGENTWIRE_ALLOWED_MODELS: "*", LOG_LEVEL: "info" },
      { agent: new ScriptAgent(), logger: createLogger("info", sink) },
    );
    const s = server;
    const [a, b, c] = [await s.createSession(), await s.createSession(), await s.createSession()];

    // One completed turn, then one on a model the client picked, cancelled while its step runs.
    const ws = await TestClient.connect(TestClient.sessionUrl(s.wsBase, a));
    clients.push(ws);
    await ws.next("session");
    ws.send({ type: "input", text: "hi", id: "m1" });
    expect(await ws.waitForTurnEnd("t1")).toMatchObject({ status: "completed", reason: "stop" });
    ws.send({ type: "configure", model: "client-picked-model" });
    ws.send({ type: "input", text: "hang", id: "m2" });
    await ws.next("token", (m) => m.turn === "t2");
    ws.send({ type: "cancel" });
    expect(await ws.waitForTurnEnd("t2")).toMatchObject({ status: "cancelled", reason: "cancelled" });
    ws.send("{not json");
    expect(await ws.next("error", (m) => m.code === "invalid_json")).toBeTruthy();
    const u1 = usageOf(ws.messages, "t1");
    const u2 = usageOf(ws.messages, "t2");
    expect([u1?.inputTokens, u1?.outputTokens, u2?.inputTokens, u2?.outputTokens]).toEqual([5, 2, 5, 1]);
    const t1End = logged(ws.messages).find((m) => m.type === "turn_end" && m.turn === "t1");
    const lastSeq = Math.max(...logged(ws.messages).map((m) => m.seq));
    ws.ws.close(1000);
    await ws.waitClosed();

    // A resume after t1's turn_end: the events of t2 are replayed.
    const resumed = await TestClient.connect(TestClient.sessionUrl(s.wsBase, a, t1End?.seq));
    clients.push(resumed);
    expect(await resumed.next("session")).toMatchObject({ resumed: true, recovered: true, lastSeq });
    await resumed.waitUntil((ms) => logged(ms).some((m) => m.seq === lastSeq), "the replay");
    const replayedEvents = logged(resumed.messages).length;
    expect(replayedEvents).toBe(lastSeq - (t1End?.seq ?? 0));

    // One SSE stream, opened and dropped by the client.
    const sse = await RawSseConnection.open(s.port, `/v1/sessions/${b.sessionId}/events?token=${b.token}`);
    await sse.waitUntil(() => sse.chunks.some((ch) => ch.text.includes("event: session")), "the welcome");
    sse.destroy();

    // Deleting the session closes the resumed link with 4410.
    expect((await fetch(`${s.base}/v1/sessions/${a.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${a.token}` } })).status).toBe(204);
    expect(await resumed.waitClosed()).toBe(4410);
    await until(async () => {
      const { samples } = await scrape(s);
      return value(samples, "agentwire_websockets") === 0 && value(samples, "agentwire_sse_streams") === 0;
    }, "every link to close");

    const { samples, types } = await scrape(s);
    const v = (name: string, labels: Record<string, string> = {}) => value(samples, name, labels);
    expect(v("agentwire_sessions")).toBe(2);
    expect(v("agentwire_sessions_created_total")).toBe(3);
    expect(series(samples, "agentwire_sessions_ended_total")).toEqual({ "reason=deleted": 1 });
    expect(series(samples, "agentwire_connections_opened_total")).toEqual({ "transport=ws": 2, "transport=sse": 1 });
    expect(series(samples, "agentwire_connections_closed_total")).toEqual({ "transport=ws,code=1000": 1, "transport=ws,code=4410": 1, "transport=sse,code=aborted": 1 });
    expect(series(samples, "agentwire_turns_total")).toEqual({ "status=completed,reason=stop": 1, "status=cancelled,reason=cancelled": 1 });
    // The configured default is its own label; a model a client picked is "other".
    expect(series(samples, "agentwire_tokens_total")).toEqual({
      "direction=in,model=m-default": u1?.inputTokens,
      "direction=out,model=m-default": u1?.outputTokens,
      "direction=in,model=other": u2?.inputTokens,
      "direction=out,model=other": u2?.outputTokens,
    });
    expect(series(samples, "agentwire_client_messages_total")).toEqual({ "type=input": 2, "type=configure": 1, "type=cancel": 1 });
    expect(series(samples, "agentwire_client_errors_total")).toEqual({ "code=invalid_json": 1 });
    expect(series(samples, "agentwire_resumes_total")).toEqual({ "recovered=true": 1 });
    expect(v("agentwire_resume_replayed_events_total")).toBe(replayedEvents);
    for (const zero of ["agentwire_takeovers_total", "agentwire_owner_lost_turns_total", "agentwire_forwarded_messages_total", "agentwire_forward_timeouts_total", "agentwire_queue_full_total", "agentwire_slow_consumer_closes_total", "agentwire_backpressure_merges_total", "agentwire_memory_refusals_total"]) {
      expect([zero, v(zero)]).toEqual([zero, 0]);
    }
    expect(series(samples, "agentwire_quota_refusals_total")).toEqual({});
    // A custom agent has no HTTP upstream: nothing counted there.
    expect(series(samples, "agentwire_upstream_attempts_total")).toEqual({});

    expect(v("agentwire_ttft_seconds_count")).toBe(2);
    expect(v("agentwire_turn_duration_seconds_count", { status: "completed" })).toBe(1);
    expect(v("agentwire_turn_duration_seconds_count", { status: "cancelled" })).toBe(1);
    expect(v("agentwire_cancel_latency_seconds_count")).toBe(1);
    expect(v("agentwire_queue_wait_seconds_count")).toBe(2);
    expect(v("agentwire_redis_append_seconds_count")).toBe(0);
    expect(v("agentwire_ttft_seconds_bucket", { le: "+Inf" })).toBe(2);
    expect(types.get("agentwire_ttft_seconds")).toBe("histogram");
    expect(types.get("agentwire_turns_total")).toBe("counter");
    expect(types.get("agentwire_sessions")).toBe("gauge");
    // The log of the remaining sessions (b's welcome is not logged; nothing else ran there).
    expect(v("agentwire_log_bytes")).toBe(0);

    // The process's own metrics.
    expect(v("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(samples.some((x) => x.name === "process_resident_memory_bytes" && x.value > 0)).toBe(true);
    expect(samples.some((x) => x.name === "nodejs_eventloop_lag_seconds")).toBe(true);
    expect(samples.some((x) => x.name === "nodejs_eventloop_lag_p99_seconds")).toBe(true);

    // No label value names a session, a token or an identity.
    const labelValues = samples.flatMap((x) => Object.values(x.labels));
    for (const secret of [a.sessionId, b.sessionId, c.sessionId, a.token, "ip:", "s_"]) {
      expect(labelValues.filter((l) => l.includes(secret))).toEqual([]);
    }

    // One "turn ended" line per turn, with these fields and no text.
    const ended = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "turn ended");
    expect(ended).toHaveLength(2);
    const [first, second] = ended as [Record<string, unknown>, Record<string, unknown>];
    const { time: _time, pid: _pid, hostname: _hostname, ttftMs, durationMs, queuedMs, ...fixed } = first;
    expect(fixed).toEqual({
      level: 30,
      svc: "agentwire",
      msg: "turn ended",
      sessionId: a.sessionId,
      turn: "t1",
      identity: "ip:127.0.0.1",
      model: "m-default",
      status: "completed",
      reason: "stop",
      inputTokens: 5,
      outputTokens: 2,
      steps: 1,
      toolCalls: 0,
      retries: 0,
    });
    expect(server.engine.get(b.sessionId)?.principal.identity).toBe("ip:127.0.0.1");
    for (const ms of [ttftMs, durationMs, queuedMs]) expect(ms).toEqual(expect.any(Number));
    expect(ttftMs as number).toBeGreaterThanOrEqual(0);
    expect(durationMs as number).toBeGreaterThanOrEqual((ttftMs as number) + (queuedMs as number));
    expect(second).toMatchObject({ turn: "t2", model: "client-picked-model", status: "cancelled", reason: "cancelled", inputTokens: 5, outputTokens: 1, steps: 1 });
    for (const line of ended) {
      const text = JSON.stringify(line);
      for (const content of ["hang", "hello", "world", '"hi"']) expect(text).not.toContain(content);
    }
  });

  it("each server has its own registry: a second server starts at zero", async () => {
    server = await startTestServer();
    await server.createSession();
    const other = await startTestServer();
    try {
      const [mine, theirs] = [await scrape(server), await scrape(other)];
      expect(value(mine.samples, "agentwire_sessions_created_total")).toBe(1);
      expect(value(theirs.samples, "agentwire_sessions_created_total")).toBe(0);
      expect(value(theirs.samples, "agentwire_sessions")).toBe(0);
    } finally {
      await other.close();
    }
  });
});

describe("/metrics of a provider agent", () => {
  const setup = providerHarness((url, apiKey) => ({ AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: `${url}/v1`, OPENAI_API_KEY: apiKey }), "sk-metrics-0123456789");

  it("a 503 then a stream: two upstream attempts, one retry, one upstream_overloaded error; the turn's log line counts the retry", async () => {
    const busy = JSON.stringify({ error: { message: "busy", type: "server_error" } });
    const { ws, logs, server } = await setup([respond(503, busy, { "retry-after-ms": "5" }), stream(fixture("openai-chat-text.sse"))]);
    ws.send({ type: "input", text: "Hi" });
    expect(await ws.waitForTurnEnd()).toMatchObject({ status: "completed", reason: "stop" });
    const usage = ws.messages.find((m) => m.type === "usage");
    const { samples } = parseMetrics(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text());
    expect(series(samples, "agentwire_upstream_attempts_total")).toEqual({ "provider=openai": 2 });
    expect(series(samples, "agentwire_upstream_retries_total")).toEqual({ "provider=openai": 1 });
    expect(series(samples, "agentwire_upstream_errors_total")).toEqual({ "provider=openai,code=upstream_overloaded": 1 });
    // AGENTWIRE_MODEL=m is the only model allowed: its own label.
    expect(series(samples, "agentwire_tokens_total")).toEqual({ "direction=in,model=m": 16, "direction=out,model=m": 12 });
    expect(usage).toMatchObject({ inputTokens: 16, outputTokens: 12 });
    const ended = logs.flatMap((chunk) => chunk.split("\n").filter(Boolean)).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "turn ended");
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ turn: "t1", model: "m", status: "completed", reason: "stop", inputTokens: 16, outputTokens: 12, steps: 1, toolCalls: 0, retries: 1 });
  });
});
