import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { SseClient, postMessage } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

const MAX = 4096;

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; field?: string; retryable: boolean; retryAfterMs?: number } } & Record<string, unknown>;
  headers: Headers;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

/** The shape every refusal shares: a stable code, a message, and whether retrying can help. */
function refusal(status: number, code: string, extra: Record<string, unknown> = {}) {
  return { status, body: { error: { code, message: expect.any(String), retryable: expect.any(Boolean), ...extra } } };
}

describe("bad requests to the HTTP fallback routes", () => {
  let server: TestServer;
  let s: { sessionId: string; token: string };
  let url: (tail: string) => string;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_MAX_PAYLOAD_BYTES: MAX });
    s = await server.createSession();
    url = (tail) => `${server.base}/v1/sessions/${s.sessionId}${tail}`;
  });
  afterAll(() => server.close());

  it("refuses resume, which has no meaning without a stream, with 400 and field type", async () => {
    // Every other malformed message is in test/conformance/bad-input.test.ts, which checks each status against the protocol's table.
    const answer = await call(url("/messages"), { method: "POST", headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" }, body: '{"type":"resume","afterSeq":0}' });
    expect(answer).toMatchObject(refusal(400, ErrorCode.InvalidMessage, { field: "type", retryable: false }));
  });

  it("answers a ping with its pong and takes JSON with parameters or a +json type", async () => {
    const pong = await postMessage(server.base, s, { type: "ping", id: "p1" });
    expect(pong).toMatchObject({ status: 200, body: { type: "pong", id: "p1", time: expect.any(Number) } });
    for (const type of ["application/json;charset=utf-8", "application/vnd.agentwire+json"]) {
      const answer = await call(url("/messages"), { method: "POST", headers: { authorization: `Bearer ${s.token}`, "content-type": type }, body: '{"type":"ping"}' });
      expect(answer.status, type).toBe(200);
    }
  });

  it("refuses a body that is not JSON by type with 415", async () => {
    const auth = { authorization: `Bearer ${s.token}` };
    const asText = await call(url("/messages"), { method: "POST", headers: { ...auth, "content-type": "text/plain" }, body: '{"type":"ping"}' });
    expect(asText).toMatchObject(refusal(415, ErrorCode.UnsupportedMediaType));
    const untyped = await call(url("/messages"), { method: "POST", headers: auth, body: new TextEncoder().encode('{"type":"ping"}') });
    expect(untyped).toMatchObject(refusal(415, ErrorCode.UnsupportedMediaType));
  });

  it("refuses a streamed body above the payload limit with 413 while reading it", async () => {
    // A declared length above the limit is in test/conformance/bad-input.test.ts.
    const big = JSON.stringify({ type: "input", text: "x".repeat(MAX) });
    // Chunked, with no Content-Length: the limit holds while reading.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(url("/messages"), { method: "POST", headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" } }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      for (let i = 0; i < 4; i++) req.write(big.slice(i * 1100, (i + 1) * 1100));
      req.end(big.slice(4400));
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body)).toMatchObject({ error: { code: ErrorCode.PayloadTooLarge } });
  });

  it("answers missing, wrong and unknown credentials with 401, 403 and 404 on every route", async () => {
    const routes: [string, RequestInit][] = [
      ["/events", {}],
      ["/messages", { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"ping"}' }],
      ["/turns/t1", {}],
    ];
    for (const [tail, init] of routes) {
      expect(await call(url(tail), init), tail).toMatchObject(refusal(401, ErrorCode.Unauthorized));
      expect(await call(`${url(tail)}?token=wrong`, init), tail).toMatchObject(refusal(403, ErrorCode.Forbidden));
      const unknown = `${server.base}/v1/sessions/s_nope${tail}?token=${s.token}`;
      expect(await call(unknown, init), tail).toMatchObject(refusal(404, ErrorCode.SessionNotFound));
    }
    expect(await call(`${url("/turns/t99")}?token=${s.token}`)).toMatchObject(refusal(404, ErrorCode.TurnNotFound));
  });

  it("answers a wrong method with 405 and the methods the route takes", async () => {
    const cases: [string, string, string][] = [
      ["PUT", "/messages", "POST, OPTIONS"],
      ["GET", "/messages", "POST, OPTIONS"],
      ["POST", "/events", "GET, OPTIONS"],
      ["DELETE", "/turns/t1", "GET, OPTIONS"],
      ["PATCH", "", "GET, DELETE, OPTIONS"],
    ];
    for (const [method, tail, allow] of cases) {
      const answer = await call(`${url(tail)}?token=${s.token}`, { method });
      expect(answer, `${method} ${tail}`).toMatchObject(refusal(405, ErrorCode.MethodNotAllowed));
      expect(answer.headers.get("allow")).toBe(allow);
    }
  });

  it("refuses a stream position that is not a seq with 400 and names where it came from", async () => {
    const cases: [string, Record<string, string>, string][] = [
      ["", { "Last-Event-ID": "abc" }, "Last-Event-ID"],
      ["&lastEventId=1.5", {}, "lastEventId"],
      ["&afterSeq=-1", {}, "afterSeq"],
    ];
    for (const [query, headers, field] of cases) {
      const answer = await call(`${url("/events")}?token=${s.token}${query}`, { headers });
      expect(answer, field).toMatchObject(refusal(400, ErrorCode.InvalidMessage, { field }));
    }
  });
});

describe("limits on the HTTP fallback routes", () => {
  it("answers a message flood with 429, retryAfterMs and Retry-After", async () => {
    const server = await startTestServer({ AGENTWIRE_INPUT_RATE_PER_SESSION: 1, AGENTWIRE_INPUT_BURST_PER_SESSION: 2 });
    const s = await server.createSession();
    expect((await postMessage(server.base, s, { type: "ping" })).status).toBe(200);
    expect((await postMessage(server.base, s, { type: "ping" })).status).toBe(200);
    const flooded = await postMessage(server.base, s, { type: "ping" });
    expect(flooded).toMatchObject(refusal(429, ErrorCode.RateLimited, { retryable: true, retryAfterMs: expect.any(Number) }));
    expect(Number(flooded.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    await server.close();
  });

  it("answers a reconnect storm with 429 and a full server with 503", async () => {
    const server = await startTestServer({ AGENTWIRE_CONNECT_RATE_PER_IP: 1, AGENTWIRE_CONNECT_BURST_PER_IP: 2, AGENTWIRE_MAX_CONNECTIONS: 1 });
    const s = await server.createSession();
    const open = await SseClient.open(SseClient.url(server.base, s));
    expect(await call(SseClient.url(server.base, s))).toMatchObject(refusal(503, ErrorCode.Overloaded, { retryable: true }));
    expect(await call(SseClient.url(server.base, s))).toMatchObject(refusal(429, ErrorCode.RateLimited, { retryable: true }));
    open.close();
    await server.close();
  });
});
