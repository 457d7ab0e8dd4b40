// Exact resume over every transport: cut the link after any event, reopen after the last seq seen,
// and the two links together hold the session's log exactly once, byte for byte.
import { describe, expect, it } from "vitest";
import type { LoggedEvent } from "@agentwire/protocol";
import { GateAgent } from "../helpers/agents.js";
import { type Driver, logged, turnEnded, turnText } from "./driver.js";
import { drivers } from "./drivers.js";
import { logFrames, newSession, serveFor, useServer } from "./fixture.js";

const INPUT = "what is 9 * 9";

/**
 * A run's log with its input's wire id put back to the scenario's `q`, the only field that differs between runs
 * over the SDK (each client gives its input its own id, which turn_start echoes); every other frame stays as sent.
 */
function asScenarioSent(frames: string[], wireId: string): string[] {
  return frames.map((frame) => {
    const event = JSON.parse(frame) as { type: string; id?: string };
    return event.type === "turn_start" && event.id === wireId ? JSON.stringify({ ...event, id: "q" }) : frame;
  });
}

describe.each(drivers)("resume over $name", (driver: Driver) => {
  // Paced, so most cuts land while the turn still runs.
  const env = useServer(driver, { AGENTWIRE_DEMO_TOKENS_PER_SEC: 2000, AGENTWIRE_DEMO_REPLY_WORDS: 10 });

  /** One turn on a fresh session; with `dropAfter`, the link is cut once it has seen that many logged events. */
  async function runTurn(dropAfter: number | null) {
    const s = await env.session();
    let link = await driver.open(s);
    expect(await link.send({ type: "input", id: "q", text: INPUT })).toEqual({ ok: true, turn: "t1" });
    const wireId = link.sentId("q");
    const seen: LoggedEvent[] = [];
    let midTurn = false;
    if (dropAfter !== null) {
      await link.waitFor((events) => logged(events).length >= dropAfter, `${dropAfter} events`);
      await link.drop();
      seen.push(...logged(link.events).slice(0, dropAfter));
      const afterSeq = seen.at(-1)?.seq ?? link.welcome.lastSeq;
      link = await driver.open(s, { afterSeq });
      expect(link.welcome).toMatchObject({ sessionId: s.sessionId, resumed: true, recovered: true });
      expect(link.welcome.lastSeq).toBeGreaterThanOrEqual(afterSeq);
      midTurn = link.welcome.activeTurn === "t1";
    }
    await link.waitFor(turnEnded("t1"));
    seen.push(...logged(link.events));
    await link.close();
    const frames = logFrames(env.server, s);
    return { seen, midTurn, frames, asSent: asScenarioSent(frames, wireId) };
  }

  it("a drop after the k-th event, for every k, then a reopen after the last seq seen: the full log, no gap, no duplicate", async () => {
    const reference = await runTurn(null);
    expect(reference.seen.map((e) => JSON.stringify(e))).toEqual(reference.frames);
    const n = reference.seen.length;
    expect(n).toBeGreaterThan(20);
    let midTurn = 0;
    for (let k = 0; k < n; k++) {
      const run = await runTurn(k);
      expect(run.seen.map((e) => e.seq), `drop after ${k}`).toEqual(reference.seen.map((_, i) => i + 1));
      // Byte-exact against what the server logged, and the same script as the uninterrupted run.
      expect(run.seen.map((e) => JSON.stringify(e)), `drop after ${k}`).toEqual(run.frames);
      expect(run.asSent, `drop after ${k}`).toEqual(reference.asSent);
      if (run.midTurn) midTurn++;
    }
    expect(midTurn).toBeGreaterThan(n / 4);
  });

  it("a reopen with the position it already had replays nothing and goes on live", async () => {
    const s = await env.session();
    const first = await driver.open(s);
    await first.send({ type: "input", text: "1 + 1" });
    await first.waitFor(turnEnded("t1"));
    await first.close();
    const lastSeq = logged(first.events).at(-1)?.seq as number;
    const again = await driver.open(s, { afterSeq: lastSeq });
    expect(again.welcome).toMatchObject({ lastSeq, resumed: true, recovered: true, activeTurn: null });
    await again.send({ type: "input", text: "2 + 2" });
    await again.waitFor(turnEnded("t2"));
    expect(logged(again.events)[0]).toMatchObject({ type: "turn_start", seq: lastSeq + 1, turn: "t2" });
    await again.close();
  });
});

describe.each(drivers)("resume at the edges of the log over $name", (driver: Driver) => {
  it("a turn keeps running with nobody attached, and a later link replays all of it", async () => {
    const agent = new GateAgent();
    const server = await serveFor(driver, {}, { agent });
    const s = await newSession(server);
    const link = await driver.open(s);
    await link.send({ type: "input", text: "go" });
    await link.waitFor((events) => events.some((e) => e.type === "token"), "the first token");
    await link.drop();
    agent.release();
    const again = await driver.open(s, { afterSeq: 0 });
    await again.waitFor(turnEnded("t1"));
    expect(turnText(again.events, "t1")).toBe("waiting done");
    expect(logged(again.events).map((e) => JSON.stringify(e))).toEqual(logFrames(server, s));
    await again.close();
    await server.close();
  });

  it("a position older than the log answers recovered: false and replays nothing; one inside it replays exactly", async () => {
    const server = await serveFor(driver, { AGENTWIRE_LOG_MAX_EVENTS: 16, AGENTWIRE_DEMO_REPLY_WORDS: 30 });
    const s = await newSession(server);
    const first = await driver.open(s);
    await first.send({ type: "input", text: "2 * 3" });
    await first.waitFor(turnEnded("t1"));
    await first.close();
    const lastSeq = logged(first.events).at(-1)?.seq as number;
    expect(lastSeq).toBeGreaterThan(16);

    const late = await driver.open(s, { afterSeq: 1 });
    expect(late.welcome).toMatchObject({ resumed: true, recovered: false, lastSeq });
    const ok = await driver.open(s, { afterSeq: lastSeq - 15 });
    expect(ok.welcome).toMatchObject({ resumed: true, recovered: true, lastSeq });
    await ok.waitFor((events) => logged(events).length === 15, "the replay");
    expect(logged(ok.events)).toEqual(logged(first.events).slice(-15));

    // The late link is live from lastSeq: the next event it sees is the next turn's first.
    await late.send({ type: "input", text: "3 * 4" });
    await Promise.all([late.waitFor(turnEnded("t2")), ok.waitFor(turnEnded("t2"))]);
    expect(logged(late.events)[0]).toMatchObject({ type: "turn_start", seq: lastSeq + 1, turn: "t2" });
    expect(logged(ok.events).slice(15)).toEqual(logged(late.events));
    await Promise.all([late.close(), ok.close()]);
    await server.close();
  });
});
