import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient, logged } from "../helpers/ws-client.js";

type Logged = ServerMessage & { seq: number };

async function runTurn(server: TestServer, dropAfter: number | null): Promise<{ events: Logged[]; drops: number }> {
  const s = await server.createSession();
  let client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
  await client.next("session");
  client.send({ type: "input", text: "what is 9 * 9" });
  const seen: Logged[] = [];
  let drops = 0;
  if (dropAfter !== null) {
    await client.waitUntil((ms) => logged(ms).length >= dropAfter, `${dropAfter} events`);
    seen.push(...logged(client.messages).slice(0, dropAfter));
    client.ws.terminate();
    await client.waitClosed();
    drops++;
    const last = seen.at(-1)?.seq ?? 0;
    client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, last));
    const welcome = await client.next("session");
    expect(welcome).toMatchObject({ resumed: true, recovered: true });
  }
  await client.waitForTurnEnd();
  seen.push(...logged(client.messages));
  client.close();
  return { events: seen, drops };
}

describe("resume over WebSocket", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 2000, AGENTWIRE_DEMO_REPLY_WORDS: 10 });
  });
  afterAll(() => server.close());

  it("dropping after every k-th event and resuming gives exactly the uninterrupted run", async () => {
    const reference = (await runTurn(server, null)).events;
    expect(reference.length).toBeGreaterThan(20);
    const strip = (e: Logged) => JSON.stringify(e);
    for (let k = 1; k < reference.length; k++) {
      const { events, drops } = await runTurn(server, k);
      expect(drops).toBe(1);
      expect(events.map((e) => e.seq), `drop after ${k}`).toEqual(reference.map((e) => e.seq));
      expect(events.map(strip), `drop after ${k}`).toEqual(reference.map(strip));
    }
  });

  it("resume message on an open connection replays after the given seq", async () => {
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
  });
});

describe("a position older than the log", () => {
  it("answers recovered: false and replays nothing", async () => {
    const server = await startTestServer({ AGENTWIRE_LOG_MAX_EVENTS: 16, AGENTWIRE_DEMO_REPLY_WORDS: 30 });
    const s = await server.createSession();
    const first = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    first.send({ type: "input", text: "2 * 3" });
    const end = await first.waitForTurnEnd();
    first.close();
    const late = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, 1));
    const welcome = await late.next("session");
    expect(welcome).toMatchObject({ resumed: true, recovered: false, lastSeq: end.seq });
    late.send({ type: "ping", id: "sync" });
    await late.next("pong");
    expect(logged(late.messages)).toEqual([]);
    // Within the log, the same server replays exactly.
    const ok = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, end.seq - 15));
    await ok.waitUntil((ms) => logged(ms).length === 15, "15 events");
    expect(logged(ok.messages).map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => end.seq - 14 + i));
    late.close();
    ok.close();
    await server.close();
  });
});
