// WebSocket specifics of a turn; the turn itself (events, seq, cancel, interrupt, tools) is in test/conformance.
import { describe, expect, it } from "vitest";
import { startTestServer } from "../helpers/server.js";
import { TestClient, logged } from "../helpers/ws-client.js";

describe("a turn over WebSocket", () => {
  it("the welcome announces half the idle timeout as heartbeat, and an input's ack comes on the link before its turn_start", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: 3 });
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    const welcome = await client.next("session");
    expect(welcome).toEqual({ type: "session", sessionId: s.sessionId, protocol: 1, lastSeq: 0, resumed: false, recovered: true, activeTurn: null, heartbeatMs: 32_000 });
    client.send({ type: "input", id: "q1", text: "what is 12 * 12?" });
    await client.waitForTurnEnd();
    expect(client.messages[1]).toEqual({ type: "ack", id: "q1", turn: "t1" });
    expect(client.messages[2]).toEqual(logged(client.messages)[0]);
    expect(client.messages[2]).toMatchObject({ type: "turn_start", seq: 1, id: "q1" });
    client.close();
    await server.close();
  });
});

describe("the demo page", () => {
  it("is served at /, with the client's browser bundle beside it", async () => {
    const server = await startTestServer();
    const res = await fetch(`${server.base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await res.text()).toContain('import { AgentwireClient } from "./agentwire-client.js";');
    const bundle = await fetch(`${server.base}/agentwire-client.js`);
    expect([bundle.status, bundle.headers.get("content-type")]).toEqual([200, "text/javascript; charset=utf-8"]);
    expect(await bundle.text()).toMatch(/export\s*\{[^}]*AgentwireClient/);
    await server.close();
  });
});
