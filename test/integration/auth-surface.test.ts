// What a server exposes beyond session creation, and to whom: browser origins (WebSocket, SSE, create),
// /metrics (token, own listener, off), the demo page switch, and per-identity quotas over HTTP and links.
import { SignJWT } from "jose";
import WebSocket from "ws";
import { afterEach, describe, expect, it } from "vitest";
import type { Agent } from "../../src/engine/index.js";
import { SseClient } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

const APP = "https://app.example";
const EVIL = "https://evil.example";
const METRICS_TOKEN = "metrics-token-0123456789abcdef";
const SECRET = "surface-test-secret-0123456789abcdefg";

/** Every per-identity limit off unless a test sets one; auth and limits always set explicitly here. */
const OPEN = {
  AGENTWIRE_AUTH: "none",
  AGENTWIRE_IDENTITY_MAX_SESSIONS: 0,
  AGENTWIRE_IDENTITY_MAX_CONNECTIONS: 0,
  AGENTWIRE_IDENTITY_MAX_TURNS: 0,
  AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: 0,
} as const;

const servers: TestServer[] = [];
const sockets: TestClient[] = [];
const streams: SseClient[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  for (const c of sockets.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
});

async function serve(overrides: Parameters<typeof startTestServer>[0], extra?: Parameters<typeof startTestServer>[1]): Promise<TestServer> {
  const server = await startTestServer(overrides, extra);
  servers.push(server);
  return server;
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | null;
  error: Record<string, unknown> | undefined;
}

async function request(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: Record<string, unknown> | null = null;
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
  } catch {
    body = { text };
  }
  return { status: res.status, headers: res.headers, body, error: body?.error as Record<string, unknown> | undefined };
}

const create = (server: TestServer, headers: Record<string, string> = {}) => request(`${server.base}/v1/sessions`, { method: "POST", headers });

async function session(server: TestServer, headers: Record<string, string> = {}): Promise<{ sessionId: string; token: string }> {
  const answer = await create(server, headers);
  expect(answer.status).toBe(201);
  return answer.body as { sessionId: string; token: string };
}

async function open(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
  const client = await TestClient.connect(url, options);
  sockets.push(client);
  return client;
}

/** An upgrade the server answers with HTTP instead of switching protocols: its status and JSON body. */
function refusedUpgrade(url: string, origin: string): Promise<{ status: number; body: { error?: { code?: string } } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.on("error", () => {});
    ws.once("open", () => {
      ws.close();
      reject(new Error("the upgrade was accepted"));
    });
    ws.once("unexpected-response", (req, res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c));
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error?: { code?: string } } });
      });
    });
  });
}

async function sse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const stream = await SseClient.open(url, headers);
  streams.push(stream);
  return stream;
}

describe("AGENTWIRE_ALLOWED_ORIGINS", () => {
  const start = () => serve({ ...OPEN, AGENTWIRE_ALLOWED_ORIGINS: APP });

  it("a WebSocket upgrade from another origin is refused with HTTP 403 origin_not_allowed", async () => {
    const server = await start();
    const s = await session(server);
    const refused = await refusedUpgrade(TestClient.sessionUrl(server.wsBase, s), EVIL);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: "origin_not_allowed", retryable: false });
    // The session saw nothing of it: no link was ever attached.
    expect(server.engine.get(s.sessionId)?.attachments.length).toBe(0);
  });

  it("a WebSocket from the listed origin, from the server's own origin, or with no Origin opens and is welcomed", async () => {
    const server = await start();
    const s = await session(server);
    for (const origin of [APP, `http://127.0.0.1:${server.port}`, undefined]) {
      const ws = await open(TestClient.sessionUrl(server.wsBase, s), origin ? { origin } : {});
      expect(await ws.next("session")).toMatchObject({ type: "session", sessionId: s.sessionId });
      ws.close();
      await ws.waitClosed();
    }
  });

  it("SSE from another origin is 403 origin_not_allowed; from the listed one 200 with its CORS header; no Origin is allowed", async () => {
    const server = await start();
    const s = await session(server);
    const url = SseClient.url(server.base, s);
    const evil = await request(url, { headers: { origin: EVIL, accept: "text/event-stream" } });
    expect(evil.status).toBe(403);
    expect(evil.error).toMatchObject({ code: "origin_not_allowed" });
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    const listed = await sse(url, { origin: APP });
    expect(listed.response.headers.get("access-control-allow-origin")).toBe(APP);
    expect(await listed.next("session")).toMatchObject({ sessionId: s.sessionId });
    const plain = await sse(url);
    expect(await plain.next("session")).toMatchObject({ sessionId: s.sessionId });
  });

  it("POST /v1/sessions from another origin is 403 origin_not_allowed and creates nothing; the listed one is 201 with CORS", async () => {
    const server = await start();
    const evil = await create(server, { origin: EVIL });
    expect(evil.status).toBe(403);
    expect(evil.error).toMatchObject({ code: "origin_not_allowed", retryable: false });
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    expect(server.engine.sessionCount).toBe(0);
    const listed = await create(server, { origin: APP });
    expect(listed.status).toBe(201);
    expect(listed.headers.get("access-control-allow-origin")).toBe(APP);
    const none = await create(server);
    expect(none.status).toBe(201);
    expect(none.headers.get("access-control-allow-origin")).toBeNull();
    expect(server.engine.sessionCount).toBe(2);
  });
});

describe("AGENTWIRE_ALLOWED_ORIGINS on the other session routes", () => {
  it("snapshot, messages and delete from another origin are 403 origin_not_allowed, even with the right token", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_ALLOWED_ORIGINS: APP });
    const s = await session(server);
    const auth = { authorization: `Bearer ${s.token}` };
    const base = `${server.base}/v1/sessions/${s.sessionId}`;
    const tries: [string, RequestInit][] = [
      [base, { headers: { ...auth, origin: EVIL } }],
      [`${base}/messages`, { method: "POST", headers: { ...auth, origin: EVIL, "content-type": "application/json" }, body: JSON.stringify({ type: "ping" }) }],
      [base, { method: "DELETE", headers: { ...auth, origin: EVIL } }],
    ];
    for (const [url, init] of tries) {
      const answer = await request(url, init);
      expect([init.method ?? "GET", answer.status, answer.error?.code]).toEqual([init.method ?? "GET", 403, "origin_not_allowed"]);
    }
    expect(server.engine.get(s.sessionId)?.isEnded).toBe(false);
    const snapshot = await request(base, { headers: { ...auth, origin: APP } });
    expect(snapshot.status).toBe(200);
    expect(snapshot.headers.get("access-control-allow-origin")).toBe(APP);
  });

  it("a preflight names the listed origin only", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_ALLOWED_ORIGINS: APP });
    const listed = await fetch(`${server.base}/v1/sessions`, { method: "OPTIONS", headers: { origin: APP, "access-control-request-method": "POST" } });
    expect(listed.status).toBe(204);
    expect(listed.headers.get("access-control-allow-origin")).toBe(APP);
    expect(listed.headers.get("access-control-allow-headers")).toContain("Authorization");
    const evil = await fetch(`${server.base}/v1/sessions`, { method: "OPTIONS", headers: { origin: EVIL, "access-control-request-method": "POST" } });
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("/metrics", () => {
  it("with AGENTWIRE_METRICS_TOKEN: 401 unauthorized without it or with a wrong one, 200 with it", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_METRICS_TOKEN: METRICS_TOKEN });
    await session(server);
    const bare = await request(`${server.base}/metrics`);
    expect(bare.status).toBe(401);
    expect(bare.error).toMatchObject({ code: "unauthorized" });
    expect(bare.headers.get("www-authenticate")).toBe("Bearer");
    for (const wrong of [`${METRICS_TOKEN}x`, METRICS_TOKEN.slice(1), ""]) {
      expect((await request(`${server.base}/metrics`, { headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    }
    const res = await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(await res.text()).toMatch(/^agentwire_sessions 1$/m);
  });

  it("with AGENTWIRE_METRICS_PORT=0: 404 on the public port, served on server.metricsPort (which serves nothing else)", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_METRICS_PORT: 0 });
    const publicAnswer = await request(`${server.base}/metrics`);
    expect(publicAnswer.status).toBe(404);
    expect(publicAnswer.error).toMatchObject({ code: "not_found" });
    expect(server.metricsPort).toEqual(expect.any(Number));
    expect(server.metricsPort).not.toBe(server.port);
    const res = await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^agentwire_sessions 0$/m);
    expect((await request(`http://127.0.0.1:${server.metricsPort}/v1/sessions`, { method: "POST" })).status).toBe(404);
  });

  it("open mode without a token serves it; with credentials required and neither token nor port it is off (404)", async () => {
    const openServer = await serve({ ...OPEN });
    expect((await fetch(`${openServer.base}/metrics`)).status).toBe(200);
    const guarded = await serve({ ...OPEN, AGENTWIRE_AUTH: "auto", AGENTWIRE_JWT_SECRET: SECRET });
    expect(guarded.metricsPort).toBeNull();
    const answer = await request(`${guarded.base}/metrics`);
    expect(answer.status).toBe(404);
    expect(answer.error).toMatchObject({ code: "not_found" });
  });
});

/** Any object implementing Agent: one word, then stop. */
const customAgent: Agent = {
  name: "custom",
  async step(_request, sink) {
    sink.text("ok");
    sink.usage(1, 1);
    return { finish: "stop", toolCalls: [] };
  },
};

describe("the demo page", () => {
  it("is served at / with the demo agent", async () => {
    const server = await serve({ ...OPEN });
    const res = await fetch(`${server.base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect((await res.text()).toLowerCase()).toContain("<!doctype html>");
  });

  it("is 404 with AGENTWIRE_DEMO_PAGE=false", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_DEMO_PAGE: false });
    const answer = await request(`${server.base}/`);
    expect(answer.status).toBe(404);
    expect(answer.error).toMatchObject({ code: "not_found" });
  });

  it("is 404 with a custom agent unless AGENTWIRE_DEMO_PAGE asks for it", async () => {
    const server = await serve({ ...OPEN }, { agent: customAgent });
    expect((await request(`${server.base}/`)).status).toBe(404);
    const asked = await serve({ ...OPEN, AGENTWIRE_DEMO_PAGE: true }, { agent: customAgent });
    expect((await fetch(`${asked.base}/`)).status).toBe(200);
  });
});

describe("per-identity quotas over HTTP and links", () => {
  it("AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE=3: the 4th create is 429 quota_exceeded sessions_per_minute, with retry-after", async () => {
    // The window is the clock's minute: start well inside one, so all four creates count in the same window.
    const toBoundary = 60_000 - (Date.now() % 60_000);
    if (toBoundary < 1000) await new Promise((resolve) => setTimeout(resolve, toBoundary + 50));
    const server = await serve({ ...OPEN, AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: 3 });
    for (let i = 0; i < 3; i++) expect((await create(server)).status).toBe(201);
    const fourth = await create(server);
    expect(fourth.status).toBe(429);
    expect(fourth.error).toMatchObject({ code: "quota_exceeded", limit: "sessions_per_minute", retryable: true });
    const retryAfterMs = fourth.error?.retryAfterMs as number;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(fourth.headers.get("retry-after")).toBe(String(Math.ceil(retryAfterMs / 1000)));
    expect(server.engine.sessionCount).toBe(3);
  });

  it("AGENTWIRE_IDENTITY_MAX_SESSIONS=2: the third create is 429 sessions; after a DELETE one succeeds", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_IDENTITY_MAX_SESSIONS: 2 });
    const first = await session(server);
    await session(server);
    const third = await create(server);
    expect(third.status).toBe(429);
    expect(third.error).toMatchObject({ code: "quota_exceeded", limit: "sessions", retryable: true, retryAfterMs: 5000 });
    expect(third.headers.get("retry-after")).toBe("5");
    const deleted = await fetch(`${server.base}/v1/sessions/${first.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${first.token}` } });
    expect(deleted.status).toBe(204);
    expect((await create(server)).status).toBe(201);
    expect((await create(server)).status).toBe(429);
  });

  it("AGENTWIRE_IDENTITY_MAX_CONNECTIONS=1: a second link gets quota_exceeded connections (WebSocket: error frame, close 4005; SSE: 429)", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_IDENTITY_MAX_CONNECTIONS: 1 });
    const s = await session(server);
    const first = await open(TestClient.sessionUrl(server.wsBase, s));
    await first.next("session");

    const second = await open(TestClient.sessionUrl(server.wsBase, s));
    expect(await second.waitClosed()).toBe(4005);
    expect(second.messages).toEqual([{ type: "error", code: "quota_exceeded", limit: "connections", message: expect.any(String), retryable: true, retryAfterMs: 1000 }]);

    // The quota is the identity's (here the address), not the session's: another session of it is refused too.
    const other = await session(server);
    const third = await open(TestClient.sessionUrl(server.wsBase, other));
    expect(await third.waitClosed()).toBe(4005);

    const stream = await request(SseClient.url(server.base, s), { headers: { accept: "text/event-stream" } });
    expect(stream.status).toBe(429);
    expect(stream.error).toMatchObject({ code: "quota_exceeded", limit: "connections", retryAfterMs: 1000 });
    expect(stream.headers.get("retry-after")).toBe("1");

    // Once the first link is gone, a new one is welcomed.
    first.close();
    await first.waitClosed();
    const again = await open(TestClient.sessionUrl(server.wsBase, s));
    expect(await again.next("session")).toMatchObject({ sessionId: s.sessionId });
    again.close();
    await again.waitClosed();
    // And an SSE stream counts the same way: while it is open, a WebSocket is refused.
    const events = await sse(SseClient.url(server.base, s));
    await events.next("session");
    const refused = await open(TestClient.sessionUrl(server.wsBase, s));
    expect(await refused.waitClosed()).toBe(4005);
  });

  it("two identities are counted apart: JWT subs a and b with AGENTWIRE_IDENTITY_MAX_SESSIONS=1 each create one", async () => {
    const server = await serve({ ...OPEN, AGENTWIRE_AUTH: "auto", AGENTWIRE_JWT_SECRET: SECRET, AGENTWIRE_IDENTITY_MAX_SESSIONS: 1 });
    const tokenFor = (sub: string) =>
      new SignJWT({ sub }).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));
    const bearer = async (sub: string) => ({ authorization: `Bearer ${await tokenFor(sub)}` });
    expect((await create(server, await bearer("a"))).status).toBe(201);
    expect((await create(server, await bearer("b"))).status).toBe(201);
    const againA = await create(server, await bearer("a"));
    expect(againA.status).toBe(429);
    expect(againA.error).toMatchObject({ code: "quota_exceeded", limit: "sessions" });
    expect((await create(server, await bearer("b"))).status).toBe(429);
    expect((await create(server, await bearer("c"))).status).toBe(201);
  });
});
