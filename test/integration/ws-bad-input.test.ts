import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCode, ErrorCode, shouldReconnect } from "@agentwire/protocol";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

const MAX = 4096;

describe("malformed frames over WebSocket", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_MAX_PAYLOAD_BYTES: MAX, AGENTWIRE_DEMO_REPLY_WORDS: 3 });
  });
  afterAll(() => server.close());

  // What only a WebSocket can send; every other class of bad message is in test/conformance/bad-input.test.ts.
  const cases: { name: string; frame: string | Buffer; binary?: boolean; error: Record<string, unknown> }[] = [
    { name: "binary frame", frame: Buffer.from([1, 2, 3]), binary: true, error: { code: ErrorCode.BinaryNotSupported } },
    { name: "negative resume", frame: '{"type":"resume","id":"a7","afterSeq":-1}', error: { code: ErrorCode.InvalidMessage, field: "afterSeq", id: "a7" } },
  ];

  it("answers a binary frame and a bad resume position with their code, field and id, keeps the connection, and still completes a turn", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await client.next("session");
    for (const c of cases) {
      const before = client.messages.length;
      client.ws.send(c.frame, { binary: c.binary ?? false });
      await client.waitUntil((ms) => ms.length > before, c.name);
      const error = client.messages[before];
      expect(error, c.name).toMatchObject({ type: "error", retryable: false, ...c.error });
      expect(error && "seq" in error ? error.seq : undefined, c.name).toBeUndefined();
    }
    expect(client.closeCode).toBeNull();
    client.send({ type: "input", id: "ok", text: "2 * 21" });
    const end = await client.waitForTurnEnd();
    expect(end).toMatchObject({ status: "completed", seq: 1 + client.messages.filter((m) => "seq" in m && m.seq !== undefined).length - 1 });
    expect(client.messages.find((m) => m.type === "tool" && m.phase === "result")).toMatchObject({ output: { value: 42 } });
  });

  it("cuts the link on a frame above the hard ceiling (4x the limit): clients see 1006", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await client.next("session");
    client.ws.send("x".repeat(MAX * 5));
    expect(await client.waitClosed()).toBe(1006);
  });
});

describe("WebSocket upgrade: tokens and positions", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  async function refused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: { error: { code: string; field?: string } } }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.on("open", () => reject(new Error("upgrade was accepted")));
      ws.on("error", () => {});
      ws.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
      });
    });
  }

  /** Opens the link and returns the close code the server ends it with, before any welcome. */
  async function closedWith(url: string): Promise<{ code: number; reason: string; frames: number }> {
    const client = await TestClient.connect(url);
    const code = await client.waitClosed();
    return { code, reason: client.closeReason, frames: client.messages.length };
  }

  it("a missing or wrong token (4401) and an unknown or deleted session (4404) are close codes a browser can read; a bad afterSeq is a 400", async () => {
    const s = await server.createSession();
    const base = `${server.wsBase}/v1/sessions/${s.sessionId}/ws`;
    expect(await closedWith(base)).toEqual({ code: CloseCode.Unauthorized, reason: "forbidden", frames: 0 });
    expect(await closedWith(`${base}?token=wrong`)).toEqual({ code: CloseCode.Unauthorized, reason: "forbidden", frames: 0 });
    expect(await closedWith(`${server.wsBase}/v1/sessions/s_missing/ws?token=${s.token}`)).toEqual({ code: CloseCode.SessionNotFound, reason: "session_not_found", frames: 0 });
    expect(shouldReconnect(CloseCode.Unauthorized) || shouldReconnect(CloseCode.SessionNotFound)).toBe(false);
    expect(await refused(`${base}?token=${s.token}&afterSeq=-3`)).toEqual({ status: 400, body: { error: expect.objectContaining({ code: "invalid_message", field: "afterSeq" }) } });
    const gone = await server.createSession();
    await fetch(`${server.base}/v1/sessions/${gone.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${gone.token}` } });
    expect((await closedWith(TestClient.sessionUrl(server.wsBase, gone))).code).toBe(CloseCode.SessionNotFound);
  });

  it("accepts the token from the Authorization header and from a bearer subprotocol", async () => {
    const s = await server.createSession();
    const url = `${server.wsBase}/v1/sessions/${s.sessionId}/ws`;
    const byHeader = await TestClient.connect(url, { headers: { authorization: `Bearer ${s.token}` } });
    expect(await byHeader.next("session")).toMatchObject({ sessionId: s.sessionId });
    const byProtocol = await TestClient.connect(url, { protocols: ["agentwire.v1", `bearer.${s.token}`] });
    expect(byProtocol.ws.protocol).toBe("agentwire.v1");
    expect(await byProtocol.next("session")).toMatchObject({ sessionId: s.sessionId });
    byHeader.close();
    byProtocol.close();
  });

  it("closes attached clients with 4410 when the session is deleted", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await client.next("session");
    const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(204);
    expect(await client.waitClosed()).toBe(4410);
  });
});

describe("connection limits", () => {
  it("rate-limits connection attempts per IP with 429 rate_limited", async () => {
    const server = await startTestServer({ AGENTWIRE_CONNECT_RATE_PER_IP: 1, AGENTWIRE_CONNECT_BURST_PER_IP: 2 });
    const s = await server.createSession();
    const url = TestClient.sessionUrl(server.wsBase, s);
    const a = await TestClient.connect(url);
    const b = await TestClient.connect(url);
    const third = await TestClient.connect(url).then(
      () => null,
      (err: { status?: number }) => err.status,
    );
    expect(third).toBe(429);
    a.close();
    b.close();
    await server.close();
  });
});

describe("connection limits behind a proxy", () => {
  /** The upgrade's status for a connection that arrives with this X-Forwarded-For. */
  const attempt = (url: string, forwardedFor: string) =>
    TestClient.connect(url, { headers: { "x-forwarded-for": forwardedFor } }).then(
      (c) => {
        c.close();
        return 101;
      },
      (err: { status?: number }) => err.status,
    );

  it("counts each client a trusted proxy names on its own, from the right of X-Forwarded-For", async () => {
    const server = await startTestServer({ AGENTWIRE_CONNECT_RATE_PER_IP: 0.001, AGENTWIRE_CONNECT_BURST_PER_IP: 1, AGENTWIRE_TRUSTED_PROXIES: "127.0.0.1" });
    const s = await server.createSession();
    const url = TestClient.sessionUrl(server.wsBase, s);
    expect(await attempt(url, "198.51.100.1")).toBe(101);
    expect(await attempt(url, "198.51.100.1")).toBe(429);
    expect(await attempt(url, "198.51.100.2")).toBe(101);
    // A client may write anything left of what the proxy appended: it does not get a fresh bucket.
    expect(await attempt(url, "203.0.113.99, 198.51.100.2")).toBe(429);
    // The SSE route counts the same way.
    const sse = (forwardedFor: string) => fetch(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`, { headers: { "x-forwarded-for": forwardedFor } });
    const open = await sse("198.51.100.3");
    expect(open.status).toBe(200);
    await open.body?.cancel();
    const refused = await sse("198.51.100.3");
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.RateLimited);
    await server.close();
  });

  it("ignores X-Forwarded-For unless the peer is a trusted proxy", async () => {
    const server = await startTestServer({ AGENTWIRE_CONNECT_RATE_PER_IP: 0.001, AGENTWIRE_CONNECT_BURST_PER_IP: 1 });
    const s = await server.createSession();
    const url = TestClient.sessionUrl(server.wsBase, s);
    expect(await attempt(url, "198.51.100.1")).toBe(101);
    expect(await attempt(url, "198.51.100.2")).toBe(429);
    await server.close();
  });
});

describe("unknown routes", () => {
  it("answer 404 not_found as JSON, and the real routes still match", async () => {
    const server = await startTestServer();
    for (const [method, path] of [["GET", "/nope"], ["POST", "/v1/sessions/s_x/unknown"], ["GET", "/v1"]] as const) {
      const res = await fetch(`${server.base}${path}`, { method });
      expect(res.status, path).toBe(404);
      expect(await res.json(), path).toEqual({ error: { code: "not_found", message: expect.any(String) } });
    }
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    expect(await client.next("session")).toMatchObject({ sessionId: s.sessionId });
    expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    client.close();
    await server.close();
  });
});
