// Resuming on an open WebSocket with a `resume` message; resume by reconnecting is in test/conformance.
import { describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

type Logged = ServerMessage & { seq: number };

describe("resume over WebSocket", () => {
  it("resume message on an open connection replays after the given seq", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 2000, AGENTWIRE_DEMO_REPLY_WORDS: 10 });
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "input", text: "1+1" });
    const end = await client.waitForTurnEnd();
    const before = client.messages.length;
    client.send({ type: "resume", afterSeq: end.seq - 2 });
    await client.waitUntil((ms) => ms.length === before + 3, "welcome + 2 events");
    const tail = client.messages.slice(before);
    expect(tail[0]).toMatchObject({ type: "session", resumed: true, recovered: true, lastSeq: end.seq });
    expect(tail.slice(1).map((m) => (m as Logged).seq)).toEqual([end.seq - 1, end.seq]);
    client.close();
    await server.close();
  });
});
