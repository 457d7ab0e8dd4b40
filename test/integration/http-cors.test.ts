import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawSseConnection } from "../helpers/sse-raw.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

const APP = "https://app.example";

function preflight(url: string, origin: string, method: string, headers = "authorization, content-type, last-event-id") {
  return fetch(url, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });
}

describe("CORS for configured origins", () => {
  let server: TestServer;
  let s: { sessionId: string; token: string };
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_CORS_ORIGINS: `${APP}, https://other.example` });
    s = await server.createSession();
  });
  afterAll(() => server.close());

  it("answers preflights on every route with the route's methods and the headers clients need", async () => {
    const routes: [string, string, string][] = [
      ["/v1/sessions", "POST", "POST, OPTIONS"],
      [`/v1/sessions/${s.sessionId}`, "DELETE", "GET, DELETE, OPTIONS"],
      [`/v1/sessions/${s.sessionId}/events`, "GET", "GET, OPTIONS"],
      [`/v1/sessions/${s.sessionId}/messages`, "POST", "POST, OPTIONS"],
      [`/v1/sessions/${s.sessionId}/turns/t1`, "GET", "GET, OPTIONS"],
    ];
    for (const [path, method, allow] of routes) {
      const res = await preflight(`${server.base}${path}`, APP, method);
      expect(res.status, path).toBe(204);
      expect(Object.fromEntries(res.headers), path).toMatchObject({
        allow,
        "access-control-allow-origin": APP,
        "access-control-allow-methods": allow,
        "access-control-allow-headers": "Authorization, Content-Type, Idempotency-Key, Last-Event-ID",
        "access-control-max-age": "600",
        vary: "Origin",
      });
    }
  });

  it("gives other origins no CORS grant", async () => {
    const res = await preflight(`${server.base}/v1/sessions/${s.sessionId}/messages`, "https://evil.example", "POST");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("vary")).toBe("Origin");
    const post = await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { origin: "https://evil.example", authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: '{"type":"ping"}',
    });
    expect(post.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("grants the origin on the stream, on POST answers and on refusals, and exposes Location and Retry-After", async () => {
    const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`, { Origin: APP });
    await raw.waitUntil(() => raw.head !== null, "the head");
    expect(raw.head).toContain(`\r\naccess-control-allow-origin: ${APP}\r\n`);
    raw.destroy();
    const post = await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { origin: APP, authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: '{"type":"input","text":"1 + 1"}',
    });
    expect(post.status).toBe(202);
    expect(post.headers.get("access-control-allow-origin")).toBe(APP);
    expect(post.headers.get("access-control-expose-headers")).toBe("Location, Retry-After");
    const refused = await fetch(`${server.base}/v1/sessions/${s.sessionId}/turns/t1`, { headers: { origin: APP } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe(APP);
  });
});

describe("CORS set to *", () => {
  it("allows any origin without varying on it", async () => {
    const server = await startTestServer({ AGENTWIRE_CORS_ORIGINS: "*" });
    const s = await server.createSession();
    const res = await preflight(`${server.base}/v1/sessions/${s.sessionId}/events`, "https://anywhere.example", "GET", "last-event-id");
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("vary")).toBeNull();
    const poll = await fetch(`${server.base}/v1/sessions/${s.sessionId}/turns/t1?token=${s.token}`, { headers: { origin: "https://anywhere.example" } });
    expect(poll.status).toBe(404);
    expect(poll.headers.get("access-control-allow-origin")).toBe("*");
    await server.close();
  });
});

describe("CORS unset", () => {
  it("sends no CORS headers at all", async () => {
    const server = await startTestServer();
    const s = await server.createSession();
    const res = await preflight(`${server.base}/v1/sessions/${s.sessionId}/messages`, APP, "POST");
    expect([...res.headers.keys()].filter((k) => k.startsWith("access-control-") || k === "vary")).toEqual([]);
    await server.close();
  });
});
