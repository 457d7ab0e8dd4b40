import { Agent, request } from "node:http";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { startNode } from "../helpers/node-proc.js";
import { startTestServer } from "../helpers/server.js";
import { TestClient, turnText } from "../helpers/ws-client.js";

/** One request over `agent` (a kept-alive connection made before the listener closed). */
function call(agent: Agent, port: number, method: string, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, agent, headers: { "content-length": "0" } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("graceful shutdown", () => {
  it("lets a running turn finish, refuses new work with server_draining, then drains every client with 4001", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 200, AGENTWIRE_DEMO_REPLY_WORDS: 30, AGENTWIRE_DRAIN_RECONNECT_MS: 700 });
    const http = new Agent({ keepAlive: true, maxSockets: 1 });
    expect((await call(http, server.port, "GET", "/readyz")).status).toBe(200);
    const s1 = await server.createSession();
    const s2 = await server.createSession();
    const busy = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s1));
    const idle = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s2));
    busy.send({ type: "input", text: "1 + 2" });
    await busy.next("token");

    const closing = server.close({ graceMs: 30_000 });
    idle.send({ type: "input", id: "late", text: "hello", final: false });
    expect(await idle.next("error", (m) => m.id === "late")).toMatchObject({ code: ErrorCode.ServerDraining, retryable: true, retryAfterMs: 700 });
    expect(await call(http, server.port, "GET", "/readyz")).toMatchObject({ status: 503 });
    expect(await call(http, server.port, "POST", "/v1/sessions")).toMatchObject({ status: 503, body: { error: { code: ErrorCode.ServerDraining, retryAfterMs: 700 } } });

    // The running turn ends normally, every token included.
    const end = await busy.waitForTurnEnd("t1");
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    const plan = planDemo("1 + 2", 1, 30);
    expect(turnText(busy.messages, "t1")).toBe([...plan.intro, ...plan.reply('{"value":3}', false)].join(""));
    // Then, and only then, every client is told to reconnect elsewhere.
    for (const client of [busy, idle]) {
      expect(await client.waitClosed()).toBe(4001);
      expect(client.messages.at(-1)).toEqual({ type: "drain", reconnectAfterMs: 700, reason: "server_draining" });
    }
    await closing;
    http.destroy();
  });

  it("stops waiting when told to, and cuts the turn", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 100, AGENTWIRE_DEMO_REPLY_WORDS: 5000 });
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "input", text: "1 + 2" });
    await client.next("token");
    const impatient = new AbortController();
    const closing = server.close({ graceMs: 3_600_000, signal: impatient.signal });
    impatient.abort();
    await closing;
    expect(await client.waitClosed()).toBe(4001);
    expect(client.messages.some((m) => m.type === "turn_end")).toBe(false);
  });

  it("through the CLI: SIGTERM waits for the turn, a second SIGTERM stops waiting", async () => {
    const node = await startNode("S1", { AGENTWIRE_DEMO_TOKENS_PER_SEC: 100, AGENTWIRE_DEMO_REPLY_WORDS: 5000, AGENTWIRE_SHUTDOWN_GRACE_MS: 600_000 });
    const s = (await (await fetch(`${node.base}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
    const client = await TestClient.connect(TestClient.sessionUrl(node.wsBase, s));
    client.send({ type: "input", text: "1 + 2" });
    await client.next("token");
    node.child.kill("SIGTERM");
    // Draining, not gone: tokens keep coming.
    const seen = client.messages.length;
    await client.waitUntil((ms) => ms.length > seen + 20, "20 more frames after SIGTERM");
    expect(client.closeCode).toBeNull();
    node.child.kill("SIGTERM");
    expect(await client.waitClosed()).toBe(4001);
    expect(await node.exited).toBe(0);
    expect(client.messages.some((m) => m.type === "turn_end")).toBe(false);
  });
});
