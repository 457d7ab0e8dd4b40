// Slow readers over every transport: a lagging link gets merged token frames (lossless), a link past
// the hard cap or stalled too long is ended with 4000, and resuming recovers every event and byte.
import { describe, expect, it } from "vitest";
import type { LoggedEvent, ServerMessage } from "@agentwire/protocol";
import type { Attachment } from "../../src/engine/index.js";
import { FakeSink } from "../helpers/fake-sink.js";
import type { TestServer } from "../helpers/server.js";
import { eventually } from "../helpers/sse-client.js";
import { type Driver, type Link, type SessionTarget, logged, turnEnded, turnText } from "./driver.js";
import { drivers } from "./drivers.js";
import { demoText, newSession, serveFor, serverSession } from "./fixture.js";

// Enough text to fill the kernel's socket buffers (several MB on loopback) and then some.
const WORDS = 200_000;
const INPUT = "1 + 2";
const EXPECTED = demoText(INPUT, WORDS, '{"value":3}');
/** This turn streams MBs on purpose: its log and output limits are lifted so only the outbox bounds it. */
const LONG_TURN = { AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_LOG_MAX_EVENTS: 300_000, AGENTWIRE_LOG_MAX_BYTES: 64 * 1024 * 1024, AGENTWIRE_TURN_MAX_OUTPUT_CHARS: 64 * 1024 * 1024 };

/** The seqs a list of frames covers: a merged token frame stands for `from..seq`. */
function covered(events: readonly LoggedEvent[]): number[] {
  return events.flatMap((e) => {
    const from = e.type === "token" && e.from !== undefined ? e.from : e.seq;
    return Array.from({ length: e.seq - from + 1 }, (_, i) => from + i);
  });
}

const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/**
 * Opens a link, stops reading it, and runs the long turn; resolves once the server has logged the
 * whole turn (seen through a fast in-process reader beside the slow link).
 */
async function stallThroughTurn(server: TestServer, driver: Driver) {
  const s = await newSession(server);
  const link = await driver.open(s);
  const session = serverSession(server, s);
  const attachment = session.attachments[0] as Attachment;
  const observer = new FakeSink();
  server.engine.attach(session, observer, undefined);
  link.pause();
  // Over WebSocket the answer waits in the unread socket with everything else.
  const answered = link.send({ type: "input", id: "long", text: INPUT });
  await observer.until((ms) => ms.at(-1)?.type === "turn_end", 30_000);
  const lastSeq = session.log.lastSeq;
  return { s, link, attachment, answered, lastSeq };
}

/** Reads what the closed link got, reopens after its last seq, and returns the two together. */
/**
 * Resumes after the last event the link saw until the turn's end has arrived. A resumed link that is itself
 * too slow for the stall timeout (a loaded machine, a replay of many events) is closed with 4000 again, and
 * does what a client does then: resume once more from what it got.
 */
async function resumeAfter(driver: Driver, s: SessionTarget, link: Link): Promise<LoggedEvent[]> {
  let all = logged(link.events);
  for (let attempt = 0; attempt < 10; attempt++) {
    const again = await driver.open(s, { afterSeq: all.at(-1)?.seq ?? 0 });
    expect(again.welcome).toMatchObject({ resumed: true, recovered: true });
    const ended = await again.waitFor(turnEnded("t1"), "the replayed turn_end", 20_000).then(
      () => true,
      async (err: unknown) => {
        if ((await again.closed())?.code === 4000) return false;
        throw err;
      },
    );
    all = all.concat(logged(again.events));
    await again.close();
    if (ended) return all;
  }
  throw new Error("ten resumes in a row were too slow for the stall timeout");
}

const hasTurnEnd = (events: readonly ServerMessage[]) => events.some((e) => e.type === "turn_end");

// Only drivers that can stop reading their socket: the SDK always reads (and reconnects after a 4000).
describe.each(drivers.filter((d) => d.capabilities.pauseReading))("a slow reader over $name", (driver) => {
  it("gets every seq and the exact text, consecutive tokens merged into frames with `from`, server memory under the hard cap", async () => {
    const hard = 4 * 1024 * 1024;
    const server = await serveFor(driver, { ...LONG_TURN, AGENTWIRE_OUTBOX_SOFT_BYTES: 16 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hard });
    const { s, link, attachment, answered, lastSeq } = await stallThroughTurn(server, driver);
    expect(attachment.peakBytes).toBeGreaterThan(16 * 1024);
    expect(attachment.peakBytes).toBeLessThanOrEqual(hard);
    expect(attachment.mergedFrames).toBeGreaterThan(0);
    link.resume();
    expect(await answered).toEqual({ ok: true, turn: "t1" });
    await link.waitFor(turnEnded("t1"), "turn_end", 20_000);
    // Not closed: the link is still attached beside the observer.
    expect(serverSession(server, s).attachments).toContain(attachment);
    const events = logged(link.events);
    expect(covered(events)).toEqual(oneToN(lastSeq));
    const merged = events.filter((e) => e.type === "token" && e.from !== undefined);
    expect(merged.length).toBeGreaterThan(0);
    for (const e of merged) expect(e.type === "token" && e.from !== undefined && e.from < e.seq).toBe(true);
    expect(events.length).toBeLessThan(lastSeq);
    expect(turnText(events, "t1")).toBe(EXPECTED);
    await link.close();
    await server.close();
  });

  it("is ended with 4000 past the hard cap, before the turn's end; resuming after its last seq recovers everything", async () => {
    const hard = 64 * 1024;
    const server = await serveFor(driver, { ...LONG_TURN, AGENTWIRE_OUTBOX_SOFT_BYTES: 8 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hard });
    const { s, link, attachment, answered, lastSeq } = await stallThroughTurn(server, driver);
    expect(attachment.peakBytes).toBeLessThanOrEqual(hard + 64 * 1024);
    link.resume();
    expect(await answered).toEqual({ ok: true, turn: "t1" });
    expect(await link.closed()).toEqual({ code: 4000, reason: "slow_consumer" });
    expect(hasTurnEnd(link.events)).toBe(false);
    const all = await resumeAfter(driver, s, link);
    expect(covered(all)).toEqual(oneToN(lastSeq));
    expect(turnText(all, "t1")).toBe(EXPECTED);
    await server.close();
  });

  it("is ended with 4000 when it takes nothing for the stall timeout below the hard cap; the backlog comes first, then resuming recovers everything", async () => {
    const hardCap = 256 * 1024 * 1024;
    const server = await serveFor(driver, { ...LONG_TURN, AGENTWIRE_OUTBOX_SOFT_BYTES: 16 * 1024, AGENTWIRE_OUTBOX_HARD_BYTES: hardCap, AGENTWIRE_SLOW_READER_TIMEOUT_MS: 400 });
    const { s, link, attachment, answered, lastSeq } = await stallThroughTurn(server, driver);
    // Only the stall watch can close it; it has when the stalled link is gone and nothing is watched.
    const session = serverSession(server, s);
    await eventually(() => server.engine.lagWatch.size === 0 && !session.attachments.includes(attachment), "the stall watch to close the link");
    expect(attachment.peakBytes).toBeLessThan(hardCap);
    link.resume();
    expect(await answered).toEqual({ ok: true, turn: "t1" });
    expect(await link.closed()).toEqual({ code: 4000, reason: "slow_consumer" });
    const seen = logged(link.events);
    expect(seen.length).toBeGreaterThan(0);
    expect(hasTurnEnd(link.events)).toBe(false);
    const all = await resumeAfter(driver, s, link);
    expect(covered(all)).toEqual(oneToN(lastSeq));
    expect(turnText(all, "t1")).toBe(EXPECTED);
    await server.close();
  });
});
