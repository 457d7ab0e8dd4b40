import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { planDemo } from "../../src/agents/demo.js";
import type { Attachment, Session } from "../../src/engine/index.js";
import { FakeSink } from "../helpers/fake-sink.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { RawSseConnection } from "../helpers/sse-raw.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

// Enough text to fill the kernel's socket buffers; the hard cap is far above what the turn makes,
// so only the stall timeout can close these links.
const WORDS = 200_000;
const INPUT = "1 + 2";
const STALL_MS = 400;
const SETTINGS = {
  AGENTWIRE_DEMO_REPLY_WORDS: WORDS,
  AGENTWIRE_OUTBOX_SOFT_BYTES: 16 * 1024,
  AGENTWIRE_OUTBOX_HARD_BYTES: 256 * 1024 * 1024,
  AGENTWIRE_SLOW_READER_TIMEOUT_MS: STALL_MS,
  AGENTWIRE_LOG_MAX_EVENTS: 300_000,
  AGENTWIRE_LOG_MAX_BYTES: 64 * 1024 * 1024,
  AGENTWIRE_TURN_MAX_OUTPUT_CHARS: 64 * 1024 * 1024,
};
const expectedText = () => {
  const plan = planDemo(INPUT, 1, WORDS);
  return [...plan.intro, ...plan.reply('{"value":3}', false)].join("");
};

/** Resolves once the observer attached beside the stalled link has seen the turn end. */
async function turnOver(server: TestServer, sessionId: string): Promise<Attachment> {
  const session = server.engine.get(sessionId) as Session;
  const stalled = session.attachments[0] as Attachment;
  const observer = new FakeSink();
  server.engine.attach(session, observer, undefined);
  await observer.until((ms) => ms.at(-1)?.type === "turn_end", 30_000);
  return stalled;
}

/** Resolves once the stall watch has closed the stalled link (the turn may end before or after it does). */
function closedByWatch(server: TestServer, sessionId: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (server.engine.lagWatch.size === 0 && (server.engine.get(sessionId)?.attachments.length ?? 0) === 1) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });
}

describe("a reader that stalls below the hard cap", () => {
  it("WebSocket: closed with 4000 by the stall timeout, the close frame read after the backlog, then an exact resume", async () => {
    const server = await startTestServer(SETTINGS);
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await client.next("session");
    const socket = (client.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    client.send({ type: "input", text: INPUT });
    const stalled = await turnOver(server, s.sessionId);
    await closedByWatch(server, s.sessionId);
    expect(stalled.peakBytes).toBeLessThan(SETTINGS.AGENTWIRE_OUTBOX_HARD_BYTES);
    socket.resume();
    expect(await client.waitClosed()).toBe(4000);
    const seen = logged(client.messages);
    const again = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, seen.at(-1)?.seq ?? 0));
    await again.waitForTurnEnd();
    const all = [...seen, ...logged(again.messages)];
    // A merged token frame covers `from..seq`: together the frames cover every seq once, in order.
    const covered = all.flatMap((e) => {
      const from = "from" in e && typeof e.from === "number" ? e.from : e.seq;
      return Array.from({ length: e.seq - from + 1 }, (_, i) => from + i);
    });
    expect(covered).toEqual(Array.from({ length: covered.length }, (_, i) => i + 1));
    expect(turnText(all, "t1")).toBe(expectedText());
    again.close();
    await server.close();
  });

  it("SSE: ended by the stall timeout with the close comment after the backlog", async () => {
    const server = await startTestServer(SETTINGS);
    const s = await server.createSession();
    const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await raw.waitUntil(() => raw.chunks.length >= 2, "the welcome");
    raw.socket.pause();
    await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages?token=${s.token}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "input", text: INPUT }) });
    const stalled = await turnOver(server, s.sessionId);
    await closedByWatch(server, s.sessionId);
    expect(stalled.peakBytes).toBeLessThan(SETTINGS.AGENTWIRE_OUTBOX_HARD_BYTES);
    raw.socket.resume();
    await raw.waitUntil(() => raw.finished, "the end of the response", 20_000);
    const text = raw.chunks.map((c) => c.text).join("");
    expect(text.endsWith(": close 4000 slow_consumer\n\n")).toBe(true);
    expect(text.includes("event: turn_end")).toBe(false);
    raw.destroy();
    await server.close();
  });
});
