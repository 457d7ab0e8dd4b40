import { describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import type { Attachment, Session } from "../../src/engine/index.js";
import { FakeSink } from "../helpers/fake-sink.js";
import { type SseEvent, SseParser } from "../helpers/sse-client.js";
import { RawSseConnection } from "../helpers/sse-raw.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { logged, turnText } from "../helpers/ws-client.js";

// Enough text to fill the kernel's socket buffers (several MB on loopback) and then some.
const WORDS = 200_000;
/** This turn streams MBs on purpose: its log and output limits are lifted so only the outbox bounds it. */
const LONG_TURN = { AGENTWIRE_LOG_MAX_BYTES: 64 * 1024 * 1024, AGENTWIRE_TURN_MAX_OUTPUT_CHARS: 64 * 1024 * 1024 };
const INPUT = "1 + 2";
const expectedText = () => {
  const plan = planDemo(INPUT, 1, WORDS);
  return [...plan.intro, ...plan.reply('{"value":3}', false)].join("");
};

function parse(raw: RawSseConnection): { events: SseEvent[]; messages: ServerMessage[]; comments: string[]; lastEventId: string } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const parser = new SseParser(
    (e) => events.push(e),
    (c) => comments.push(c.text),
  );
  for (const chunk of raw.chunks) parser.feed(chunk.text);
  return { events, messages: events.map((e) => JSON.parse(e.data) as ServerMessage), comments, lastEventId: parser.lastEventId };
}

const sawTurnEnd = (raw: RawSseConnection) => () => raw.chunks.at(-1)?.text.includes("event: turn_end") ?? false;

/** Runs a long turn while the SSE reader does not read; returns once the server-side turn is over. */
async function stallThroughTurn(server: TestServer) {
  const s = await server.createSession();
  const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
  await raw.waitUntil(() => raw.chunks.length >= 2, "the welcome");
  const session = server.engine.get(s.sessionId) as Session;
  const attachment = [...session.attachments][0] as Attachment;
  const observer = new FakeSink();
  server.engine.attach(session, observer, undefined);
  raw.socket.pause();
  await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages?token=${s.token}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "input", text: INPUT }) });
  await observer.until((ms) => ms.at(-1)?.type === "turn_end", 30_000);
  return { s, raw, attachment };
}

describe("an SSE reader that stops reading", () => {
  it("gets the full text merged into fewer events, with server memory under the hard cap", async () => {
    const hard = 4 * 1024 * 1024;
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_OUTBOX_SOFT_BYTES: 16 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hard, AGENTWIRE_LOG_MAX_EVENTS: 300_000, ...LONG_TURN });
    const { raw, attachment } = await stallThroughTurn(server);
    expect(attachment.peakBytes).toBeGreaterThan(16 * 1024);
    expect(attachment.peakBytes).toBeLessThanOrEqual(hard);
    expect(attachment.mergedFrames).toBeGreaterThan(0);
    raw.socket.resume();
    await raw.waitUntil(sawTurnEnd(raw), "turn_end", 20_000);
    expect(raw.finished).toBe(false);
    const { events, messages } = parse(raw);
    expect(turnText(messages, "t1")).toBe(expectedText());
    const seqs = logged(messages);
    // Merged events keep increasing ids and say which range they cover, so nothing is missing.
    let next = 1;
    for (const [i, e] of seqs.entries()) {
      const from = "from" in e && typeof e.from === "number" ? e.from : e.seq;
      expect(from).toBeGreaterThanOrEqual(next);
      next = e.seq + 1;
      expect(events[i + 1]?.id).toBe(String(e.seq));
    }
    expect(seqs.length).toBeLessThan(next - 1);
    raw.destroy();
    await server.close();
  });

  it("is ended past the hard cap with a close comment, then resumes by Last-Event-ID with exact text", async () => {
    const hard = 64 * 1024;
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_OUTBOX_SOFT_BYTES: 8 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hard, AGENTWIRE_LOG_MAX_EVENTS: 300_000, ...LONG_TURN });
    const { s, raw, attachment } = await stallThroughTurn(server);
    expect(attachment.peakBytes).toBeLessThanOrEqual(hard + 64 * 1024);
    raw.socket.resume();
    await raw.waitUntil(() => raw.finished, "the end of the response");
    const first = parse(raw);
    expect(first.comments.at(-1)).toBe(" close 4000 slow_consumer");
    expect(first.messages.some((m) => m.type === "turn_end")).toBe(false);

    const again = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`, { "Last-Event-ID": first.lastEventId });
    await again.waitUntil(sawTurnEnd(again), "the replayed turn_end", 20_000);
    const second = parse(again);
    expect(second.messages[0]).toMatchObject({ type: "session", resumed: true, recovered: true });
    const all = [...logged(first.messages), ...logged(second.messages)];
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    expect(turnText(all, "t1")).toBe(expectedText());
    raw.destroy();
    again.destroy();
    await server.close();
  });
});
