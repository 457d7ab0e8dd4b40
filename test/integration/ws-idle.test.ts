import { describe, expect, it } from "vitest";
import { TestClient, turnText } from "../helpers/ws-client.js";
import { startTestServer } from "../helpers/server.js";

// uWS's smallest idle timeout. Its timers tick every 4 s: it pings about halfway and drops a link
// that has not answered by the timeout, give or take a tick.
const IDLE_S = 8;

describe("WebSocket keepalive", () => {
  it("pings idle links, keeps those that answer, and closes those that stay silent", { timeout: 40_000 }, async () => {
    const server = await startTestServer({ AGENTWIRE_WS_IDLE_TIMEOUT_S: IDLE_S });
    const s = await server.createSession();
    const url = TestClient.sessionUrl(server.wsBase, s);
    const silent = await TestClient.connect(url, { autoPong: false });
    const answering = await TestClient.connect(url);
    let silentPings = 0;
    let answeredPings = 0;
    silent.ws.on("ping", () => silentPings++);
    answering.ws.on("ping", () => answeredPings++);
    const opened = Date.now();

    await silent.waitUntil(() => silent.closeCode !== null, "the silent link to be closed", 30_000);
    const closedAfterMs = Date.now() - opened;
    expect(closedAfterMs).toBeGreaterThanOrEqual((IDLE_S / 2) * 1000);
    // Not a clean close frame: the server drops a link that stopped answering.
    expect(silent.closeCode).toBe(1006);
    expect(silentPings).toBeGreaterThanOrEqual(1);

    // The link that answered the same pings is still there and still works.
    expect(answeredPings).toBeGreaterThanOrEqual(1);
    expect(answering.closeCode).toBeNull();
    answering.send({ type: "input", text: "2 + 2" });
    const end = await answering.waitForTurnEnd();
    expect(end.status).toBe("completed");
    expect(turnText(answering.messages, end.turn)).toContain("The calculator tool says 4.");
    answering.close();
    await server.close();
  });
});
