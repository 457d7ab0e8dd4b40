import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SseClient, postMessage } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient, logged } from "../helpers/ws-client.js";

describe("one session watched over WebSocket and SSE at once", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 400, AGENTWIRE_DEMO_REPLY_WORDS: 8 });
  });
  afterAll(() => server.close());

  it("both see identical seq sequences and frames, whichever transport drives the turns", async () => {
    const s = await server.createSession();
    const ws = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    const sse = await SseClient.open(SseClient.url(server.base, s));
    await Promise.all([ws.next("session"), sse.next("session")]);

    // Turn 1 from the WebSocket, turn 2 from a POST, turn 3 from a POST and cancelled by a POST.
    ws.send({ type: "input", id: "in1", text: "3 * 5" });
    await Promise.all([ws.waitForTurnEnd("t1"), sse.waitForTurnEnd("t1")]);
    expect((await postMessage(server.base, s, { type: "input", text: "7 + 8" })).body).toEqual({ ok: true, turn: "t2" });
    await Promise.all([ws.waitForTurnEnd("t2"), sse.waitForTurnEnd("t2")]);
    expect((await postMessage(server.base, s, { type: "input", text: "9 - 1" })).body).toEqual({ ok: true, turn: "t3" });
    expect(await postMessage(server.base, s, { type: "cancel", id: "c1", turn: "t3" })).toMatchObject({ status: 202, body: { ok: true, id: "c1" } });
    const [wsEnd, sseEnd] = await Promise.all([ws.waitForTurnEnd("t3"), sse.waitForTurnEnd("t3")]);
    expect(wsEnd).toMatchObject({ status: "cancelled", reason: "cancelled" });
    expect(sseEnd).toEqual(wsEnd);

    const overWs = logged(ws.messages);
    const overSse = logged(sse.messages);
    expect(overSse.map((e) => e.seq)).toEqual(overWs.map((e) => e.seq));
    expect(overWs.map((e) => e.seq)).toEqual(overWs.map((_, i) => i + 1));
    expect(overSse).toEqual(overWs);
    // The acknowledgement belongs to the WebSocket that sent the input; the stream carries only the session's events.
    expect(ws.messages.some((m) => m.type === "ack" && m.id === "in1")).toBe(true);
    expect(sse.messages.some((m) => m.type === "ack")).toBe(false);
    ws.close();
    sse.close();
  });
});
