import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { GateAgent } from "../helpers/agents.js";
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
  const agent = new GateAgent();
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_MAX_PAYLOAD_BYTES: MAX }, { agent });
    s = await server.createSession();
    url = (tail) => `${server.base}/v1/sessions/${s.sessionId}${tail}`;
  });
  afterAll(() => server.close());

  const bodies: { name: string; body: string; status?: number; error: Record<string, unknown> }[] = [
    { name: "not JSON", body: "{nope", error: { code: ErrorCode.InvalidJson } },
    { name: "empty body", body: "", error: { code: ErrorCode.InvalidJson } },
    { name: "not an object", body: "[1,2]", error: { code: ErrorCode.InvalidMessage } },
    { name: "no type", body: '{"text":"x"}', error: { code: ErrorCode.InvalidMessage, field: "type" } },
    { name: "unknown type", body: '{"type":"launch"}', error: { code: ErrorCode.UnknownType, field: "type" } },
    { name: "missing field", body: '{"type":"input"}', error: { code: ErrorCode.InvalidMessage, field: "text" } },
    { name: "mistyped field", body: '{"type":"input","text":"x","final":"yes"}', error: { code: ErrorCode.InvalidMessage, field: "final" } },
    { name: "unknown field", body: '{"type":"cancel","turnn":"t1"}', error: { code: ErrorCode.InvalidMessage, field: "turnn" } },
    { name: "nested field", body: '{"type":"configure","tools":[{"name":"bad name!"}]}', error: { code: ErrorCode.InvalidMessage, field: "tools.0.name" } },
    { name: "resume without a stream", body: '{"type":"resume","afterSeq":0}', error: { code: ErrorCode.InvalidMessage, field: "type" } },
    { name: "empty input", body: '{"type":"input","text":"  "}', error: { code: ErrorCode.InvalidMessage, field: "text" } },
    { name: "tool_result with no call", body: '{"type":"tool_result","callId":"c1","output":1}', status: 404, error: { code: ErrorCode.ToolCallNotFound, field: "callId" } },
  ];

  it("answers each malformed message with its status, code and field, the same codes as over WebSocket", async () => {
    for (const c of bodies) {
      const answer = await call(url("/messages"), { method: "POST", headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" }, body: c.body });
      expect(answer, c.name).toMatchObject(refusal(c.status ?? 400, c.error.code as string, { ...c.error, retryable: false }));
    }
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

  it("refuses bodies above the payload limit with 413, declared or streamed", async () => {
    const big = JSON.stringify({ type: "input", text: "x".repeat(MAX) });
    const declared = await call(url("/messages"), { method: "POST", headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" }, body: big });
    expect(declared).toMatchObject(refusal(413, ErrorCode.PayloadTooLarge));
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

  it("answers input while a turn runs with 409 turn_active, and takes it with interrupt", async () => {
    const fresh = await server.createSession();
    expect(await postMessage(server.base, fresh, { type: "input", text: "first" })).toMatchObject({ status: 202, body: { turn: "t1" } });
    const busy = await postMessage(server.base, fresh, { type: "input", text: "second" });
    expect(busy).toMatchObject(refusal(409, ErrorCode.TurnActive, { field: "interrupt", retryable: true }));
    expect(await postMessage(server.base, fresh, { type: "input", text: "second", interrupt: true })).toMatchObject({ status: 202, body: { turn: "t2" } });
    const t1 = await call(`${server.base}/v1/sessions/${fresh.sessionId}/turns/t1?token=${fresh.token}`);
    expect(t1.body).toMatchObject({ status: "cancelled", reason: "interrupted" });
    agent.release();
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
