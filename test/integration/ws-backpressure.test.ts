import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { planDemo } from "../../src/agents/demo.js";
import type { Session } from "../../src/engine/index.js";
import { FakeSink } from "../helpers/fake-sink.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

// Enough text to fill the kernel's socket buffers (several MB on loopback) and then some.
const WORDS = 200_000;
/** This turn streams MBs on purpose: its log and output limits are lifted so only the outbox bounds it. */
const LONG_TURN = { AGENTWIRE_LOG_MAX_BYTES: 64 * 1024 * 1024, AGENTWIRE_TURN_MAX_OUTPUT_CHARS: 64 * 1024 * 1024 };
const INPUT = "1 + 2";
const expectedText = () => {
  const plan = planDemo(INPUT, 1, WORDS);
  return [...plan.intro, ...plan.reply('{"value":3}', false)].join("");
};

/** Runs a long turn while the client does not read; returns when the server-side turn is over. */
async function stallThroughTurn(server: TestServer) {
  const s = await server.createSession();
  const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
  await client.next("session");
  const session = server.engine.get(s.sessionId) as Session;
  const attachment = [...session.attachments][0];
  const observer = new FakeSink();
  server.engine.attach(session, observer, undefined);
  const socket = (client.ws as unknown as { _socket: Socket })._socket;
  socket.pause();
  client.send({ type: "input", text: INPUT });
  await observer.until((ms) => ms.at(-1)?.type === "turn_end", 30_000);
  return { s, client, socket, attachment };
}

describe("a client that stops reading", () => {
  it("gets the full text merged into fewer frames, with server memory under the hard cap", async () => {
    const hard = 4 * 1024 * 1024;
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_OUTBOX_SOFT_BYTES: 16 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hard, AGENTWIRE_LOG_MAX_EVENTS: 300_000, ...LONG_TURN });
    const { client, socket, attachment } = await stallThroughTurn(server);
    expect(attachment?.peakBytes).toBeGreaterThan(16 * 1024);
    expect(attachment?.peakBytes).toBeLessThanOrEqual(hard);
    expect(attachment?.mergedFrames).toBeGreaterThan(0);
    socket.resume();
    const end = await client.waitForTurnEnd();
    expect(client.closeCode).toBeNull();
    expect(turnText(client.messages, "t1")).toBe(expectedText());
    const events = logged(client.messages);
    // Seq stays increasing; merged frames say which range they cover, so nothing is missing.
    let next = 1;
    for (const e of events) {
      const from = "from" in e && typeof e.from === "number" ? e.from : e.seq;
      expect(from).toBeGreaterThanOrEqual(next);
      next = e.seq + 1;
    }
    expect(end.seq).toBe(next - 1);
    expect(events.length).toBeLessThan(end.seq);
    client.close();
    await server.close();
  });

  it("is closed with 4000 past the hard cap, then resumes from the log with exact text", async () => {
    const hard = 64 * 1024;
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_OUTBOX_SOFT_BYTES: 8 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hard, AGENTWIRE_LOG_MAX_EVENTS: 300_000, ...LONG_TURN });
    const { s, client, socket, attachment } = await stallThroughTurn(server);
    expect(attachment?.peakBytes).toBeLessThanOrEqual(hard + 64 * 1024);
    socket.resume();
    expect(await client.waitClosed()).toBe(4000);
    const seen = logged(client.messages);
    const last = seen.at(-1)?.seq ?? 0;
    const again = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, last));
    await again.waitForTurnEnd();
    const all = [...seen, ...logged(again.messages)];
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    expect(turnText(all, "t1")).toBe(expectedText());
    again.close();
    await server.close();
  });
});
