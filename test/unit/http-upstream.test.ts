// HTTP machinery: retries and backoff, retry hints, timeouts, error mapping, redaction, and closing the socket.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { AgentError, type StepSink } from "../../src/engine/agent.js";
import { HttpUpstream, type HttpUpstreamOptions, type RetryInfo, sleep } from "../../src/agents/http-upstream.js";
import { parseRetryAfter, redactSecrets, statusError } from "../../src/agents/upstream-errors.js";
import type { SseEvent } from "@agentwire/protocol/sse";
import { FakeUpstream, type Reply } from "../helpers/fake-upstream.js";
import { recordSteps } from "../helpers/step-recorder.js";

const KEY = "sk-test-0123456789abcdefSECRET";
const STREAM = "data: one\n\ndata: two\n\n";

let fake: FakeUpstream | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

function upstream(options: Partial<HttpUpstreamOptions> = {}): { http: HttpUpstream; retries: RetryInfo[] } {
  const retries: RetryInfo[] = [];
  const http = new HttpUpstream({
    apiKey: KEY,
    timeouts: { connectMs: 1000, firstByteMs: 1000, idleMs: 1000 },
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 50 },
    onRetry: (info) => retries.push(info),
    ...options,
  });
  return { http, retries };
}

/** Streams every event's data into the sink as text and returns the data list. */
async function collect(events: AsyncIterable<SseEvent>, sink: StepSink): Promise<string[]> {
  const out: string[] = [];
  for await (const e of events) {
    out.push(e.data);
    sink.text(e.data);
  }
  return out;
}

async function run(http: HttpUpstream, replies: Reply[], signal = new AbortController().signal) {
  fake = await FakeUpstream.start(replies);
  const rec = recordSteps();
  const request = { url: `${fake.url}/x`, headers: { authorization: `Bearer ${KEY}` }, body: '{"a":1}' };
  const result = http.run(request, rec.sink, signal, collect);
  return { result, rec, fake };
}

async function failure(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe("retries", () => {
  it("retries a 429 after the retry-after-ms wait and produces the output once", async () => {
    const { http, retries } = upstream();
    const { result, rec, fake } = await run(http, [
      { status: 429, headers: { "retry-after-ms": "7" }, body: '{"error":{"message":"slow down"}}' },
      { stream: STREAM },
    ]);
    expect(await result).toEqual(["one", "two"]);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]?.bodyText).toBe('{"a":1}');
    expect(retries.map((r) => [r.attempt, r.delayMs, r.error.code])).toEqual([[1, 7, ErrorCode.RateLimited]]);
    expect(rec.calls).toEqual([
      ["text", "one"],
      ["text", "two"],
    ]);
  });

  it("backs off with full jitter when there is no hint, then fails with the overload code and a wait", async () => {
    const { http, retries } = upstream({ random: () => 0.5, retry: { maxAttempts: 3, baseDelayMs: 4, maxDelayMs: 50 } });
    const { result, fake } = await run(http, [{ status: 503, body: "busy" }]);
    const err = await failure(result);
    expect([err.code, err.retryable, err.retryAfterMs]).toEqual([ErrorCode.UpstreamOverloaded, true, 16]);
    expect(fake.requests).toHaveLength(3);
    expect(retries.map((r) => r.delayMs)).toEqual([2, 4]);
  });

  it("retries 529 and 500, then succeeds", async () => {
    const { http, retries } = upstream({ retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 } });
    const { result, fake } = await run(http, [{ status: 529, headers: { "retry-after": "0" } }, { status: 500 }, { stream: STREAM }]);
    expect(await result).toEqual(["one", "two"]);
    expect(fake.requests).toHaveLength(3);
    expect(retries.map((r) => r.error.code)).toEqual([ErrorCode.UpstreamOverloaded, ErrorCode.UpstreamError]);
    expect(retries[0]?.delayMs).toBe(0);
  });

  it("does not wait out a retry-after longer than maxDelayMs: fails at once with the hint", async () => {
    const { http } = upstream();
    const { result, fake } = await run(http, [{ status: 429, headers: { "retry-after": "30" } }, { stream: STREAM }]);
    const err = await failure(result);
    expect([err.code, err.retryable, err.retryAfterMs]).toEqual([ErrorCode.RateLimited, true, 30_000]);
    expect(fake.requests).toHaveLength(1);
  });

  it("never retries 401/403 and never leaks the key from the error body", async () => {
    for (const status of [401, 403]) {
      const { http, retries } = upstream();
      const body = JSON.stringify({ error: { message: `Incorrect API key provided: ${KEY}. Also sk-proj-abcdEFGH1234 and Bearer ${KEY}` } });
      const { result, fake: f } = await run(http, [{ status, body }]);
      const err = await failure(result);
      expect([err.code, err.retryable, f.requests.length, retries.length]).toEqual([ErrorCode.UpstreamError, false, 1, 0]);
      expect(err.message).not.toContain("SECRET");
      expect(err.message).not.toContain("sk-");
      expect(err.message).toContain("Incorrect API key provided");
      await f.close();
      fake = undefined;
    }
  });

  it("retries a connection that fails before any response, then maps it to a retryable upstream_error", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const { http, retries } = upstream();
    const rec = recordSteps();
    const p = http.run({ url: `http://127.0.0.1:${port}/`, headers: {}, body: "{}" }, rec.sink, new AbortController().signal, collect);
    const err = await failure(p);
    expect([err.code, err.retryable, retries.length]).toEqual([ErrorCode.UpstreamError, true, 2]);
  });

  it("aborts the backoff wait the moment the turn is cancelled", async () => {
    const ac = new AbortController();
    let abortedAt = 0;
    const { http } = upstream({
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 60_000 },
      onRetry: () =>
        setImmediate(() => {
          abortedAt = performance.now();
          ac.abort(new Error("cancelled by user"));
        }),
    });
    const { result, fake } = await run(http, [{ status: 429, headers: { "retry-after": "10" } }], ac.signal);
    await expect(result).rejects.toThrow("cancelled by user");
    expect(performance.now() - abortedAt).toBeLessThan(50);
    expect(fake.requests).toHaveLength(1);
  });
});

describe("odd answers", () => {
  it("fails with a non-retryable upstream_error when a 200 carries JSON instead of a stream, without the key", async () => {
    const { http, retries } = upstream();
    const { result, fake } = await run(http, [{ status: 200, body: `{"error":{"message":"bad key ${KEY}"}}` }]);
    const err = await failure(result);
    expect([err.code, err.retryable, retries.length, fake.requests.length]).toEqual([ErrorCode.UpstreamError, false, 0, 1]);
    expect(err.message).toContain("bad key [redacted]");
  });
});

describe("timeouts", () => {
  it.each([
    ["response headers", { headerDelayMs: 5_000 }],
    ["first byte", { firstByteDelayMs: 5_000 }],
    ["next chunk", { finish: "hold" as const }],
  ])("fails with upstream_timeout when the %s is late, closes the socket, and does not retry", async (phase, opts) => {
    const { http, retries } = upstream({ timeouts: { connectMs: 60, firstByteMs: 60, idleMs: 60 } });
    const { result, fake } = await run(http, [{ stream: STREAM, ...opts }]);
    const err = await failure(result);
    const failedAt = performance.now();
    expect([err.code, err.retryable, retries.length, fake.requests.length]).toEqual([ErrorCode.UpstreamTimeout, true, 0, 1]);
    expect(err.message).toContain(phase);
    const closedAt = await fake.request(0).then((r) => r.socketClosed);
    expect(closedAt - failedAt).toBeLessThan(50);
  });
});

describe("streams", () => {
  it("ends the events without error when the connection drops mid-stream", async () => {
    const { http } = upstream();
    const { result } = await run(http, [{ stream: "data: one\n\ndata: cut", finish: "destroy" }]);
    expect(await result).toEqual(["one"]);
  });

  it("closes the socket within 50 ms of a cancel mid-stream and rejects with the abort reason", async () => {
    const { http } = upstream();
    const ac = new AbortController();
    fake = await FakeUpstream.start([{ stream: STREAM, finish: "hold" }]);
    let abortedAt = 0;
    const rec = recordSteps((call) => {
      if (call[0] === "text" && call[1] === "two") {
        abortedAt = performance.now();
        ac.abort();
      }
    });
    const p = http.run({ url: fake.url, headers: {}, body: "{}" }, rec.sink, ac.signal, collect);
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    const closedAt = (await fake.request(0).then((r) => r.socketClosed)) - abortedAt;
    expect(closedAt).toBeLessThan(50);
  });
});

describe("helpers", () => {
  it("parses retry-after as ms, seconds and HTTP date", () => {
    const now = Date.parse("2025-01-01T00:00:00Z");
    const h = (init: Record<string, string>) => new Headers(init);
    expect(parseRetryAfter(h({ "retry-after-ms": "250", "retry-after": "9" }), now)).toBe(250);
    expect(parseRetryAfter(h({ "retry-after": "2" }), now)).toBe(2000);
    expect(parseRetryAfter(h({ "retry-after": "0.5" }), now)).toBe(500);
    expect(parseRetryAfter(h({ "retry-after": "Wed, 01 Jan 2025 00:00:03 GMT" }), now)).toBe(3000);
    expect(parseRetryAfter(h({ "retry-after": "Tue, 31 Dec 2024 00:00:00 GMT" }), now)).toBe(0);
    expect(parseRetryAfter(h({ "retry-after": "soon" }), now)).toBeUndefined();
    expect(parseRetryAfter(h({}), now)).toBeUndefined();
  });

  it("maps statuses to stable codes", () => {
    const codes = [400, 401, 403, 404, 408, 429, 500, 502, 503, 529].map((s) => {
      const e = statusError(s, '{"error":{"type":"x","message":"m"}}', 5, undefined);
      return [s, e.code, e.retryable];
    });
    expect(codes).toEqual([
      [400, ErrorCode.UpstreamError, false],
      [401, ErrorCode.UpstreamError, false],
      [403, ErrorCode.UpstreamError, false],
      [404, ErrorCode.UpstreamError, false],
      [408, ErrorCode.UpstreamError, true],
      [429, ErrorCode.RateLimited, true],
      [500, ErrorCode.UpstreamError, true],
      [502, ErrorCode.UpstreamError, true],
      [503, ErrorCode.UpstreamOverloaded, true],
      [529, ErrorCode.UpstreamOverloaded, true],
    ]);
    expect(statusError(500, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', undefined, undefined).code).toBe(
      ErrorCode.UpstreamOverloaded,
    );
  });

  it("redacts the configured key, sk- keys and bearer tokens", () => {
    expect(redactSecrets("key=my-custom-key-123 and sk-ant-api03-xyzXYZ_12 and Bearer abcdefghijkl", "my-custom-key-123")).toBe(
      "key=[redacted] and [redacted] and Bearer [redacted]",
    );
  });

  it("rejects contradictory options at construction", () => {
    expect(() => new HttpUpstream({ apiKey: "", timeouts: { idleMs: 0 } })).toThrow(RangeError);
    expect(() => new HttpUpstream({ apiKey: "", retry: { maxAttempts: 0 } })).toThrow(RangeError);
    expect(() => new HttpUpstream({ apiKey: "", retry: { baseDelayMs: 100, maxDelayMs: 10 } })).toThrow(RangeError);
  });

  it("sleep resolves after the wait and rejects at once on abort", async () => {
    const ac = new AbortController();
    await sleep(1, ac.signal);
    const p = sleep(60_000, ac.signal);
    ac.abort(new Error("stop"));
    await expect(p).rejects.toThrow("stop");
  });
});

describe("backoff", () => {
  it("doubles from its base up to its cap; full jitter stays below it", async () => {
    const { backoffMs, jitteredBackoffMs } = await import("../../src/backoff.js");
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, 100, 2000))).toEqual([100, 200, 400, 800, 1600, 2000]);
    expect(backoffMs(0, 100, 2000)).toBe(100);
    expect([0, 0.5, 0.999].map((r) => jitteredBackoffMs(3, 100, 2000, () => r))).toEqual([0, 200, 399]);
  });
});
