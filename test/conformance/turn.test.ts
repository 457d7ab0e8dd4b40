// A full demo turn over every transport: each event, in order, with every seq and every byte of text.
import { describe, expect, it } from "vitest";
import type { LoggedEvent } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { RecordingDemoAgent } from "../helpers/agents.js";
import { logged, turnEnded, turnText } from "./driver.js";
import { drivers } from "./drivers.js";
import { demoText, logFrames, snapshot, useServer } from "./fixture.js";

const WORDS = 12;

type Unsequenced = LoggedEvent extends infer E ? (E extends unknown ? Omit<E, "seq"> : never) : never;

interface TurnOptions {
  /** The id the input that started the turn carried on the wire (`Link.sentId`), which turn_start echoes. */
  id?: string;
  firstSeq?: number;
  /** The size of the history earlier turns left, which the demo counts as input. */
  priorChars?: number;
}

/** Every event the demo agent's calculator turn logs, in order, numbered on from `firstSeq`. */
function expectedTurn(turn: string, input: string, output: { value: number }, { id, firstSeq = 1, priorChars = 0 }: TurnOptions = {}): LoggedEvent[] {
  const plan = planDemo(input, 1, WORDS);
  const callId = `call_${turn}_0`;
  const tool = { type: "tool", turn, callId, name: "calculator", executor: "server" } as const;
  const intro = plan.intro.join("");
  const outputJson = JSON.stringify(output);
  const reply = [...plan.reply(outputJson, false)];
  // The demo counts a quarter token per history character: the input for step one; input, intro and tool output for step two.
  const before = priorChars + input.length;
  const inputTokens = Math.ceil(before / 4) + Math.ceil((before + intro.length + outputJson.length) / 4);
  const outputTokens = plan.intro.length + plan.call.argsChunks.length + reply.length;
  const events: Unsequenced[] = [
    { type: "turn_start", turn, input, ...(id === undefined ? {} : { id }) },
    { type: "progress", turn, stage: "thinking", message: "reading the request", fraction: 0.1 },
    ...plan.intro.map((text) => ({ type: "token" as const, turn, text })),
    { type: "progress", turn, stage: "tool", message: "calling calculator", fraction: 0.4 },
    { ...tool, phase: "start" },
    ...plan.call.argsChunks.map((argsDelta) => ({ ...tool, phase: "delta" as const, argsDelta })),
    { ...tool, phase: "ready", args: JSON.parse(plan.call.argsChunks.join("")) },
    { ...tool, phase: "result", output, isError: false },
    { type: "progress", turn, stage: "writing", message: "writing the answer", fraction: 0.7 },
    ...reply.map((text) => ({ type: "token" as const, turn, text })),
    { type: "usage", turn, inputTokens, outputTokens, partial: false },
    { type: "turn_end", turn, status: "completed", reason: "stop" },
  ];
  return events.map((e, i) => ({ ...e, seq: firstSeq + i }) as LoggedEvent);
}

describe.each(drivers)("a full turn over $name", (driver) => {
  const env = useServer(driver, {}, { agent: new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: WORDS }) });

  it("streams every event of the demo's script in order, seq 1..n with no gap, exactly as the server logged it", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    expect(link.welcome).toEqual({ type: "session", sessionId: s.sessionId, protocol: 1, lastSeq: 0, resumed: false, recovered: true, activeTurn: null, heartbeatMs: expect.any(Number) });
    expect(await link.send({ type: "input", id: "q1", text: "what is 12 * 12?" })).toEqual({ ok: true, turn: "t1" });
    await link.waitFor(turnEnded("t1"));
    const events = logged(link.events);
    // Exact, but for the input id turn_start echoes: the one the link put on the wire (the SDK chooses its own).
    expect(events).toEqual(expectedTurn("t1", "what is 12 * 12?", { value: 144 }, { id: link.sentId("q1") }));
    expect(turnText(events, "t1")).toBe(demoText("what is 12 * 12?", WORDS, '{"value":144}'));
    // Byte for byte what the server logged: nothing re-encoded, reordered or added on the way.
    expect(events.map((e) => JSON.stringify(e))).toEqual(logFrames(env.server, s));
    expect(link.events).toHaveLength(1 + events.length);
    await link.close();
  });

  it("numbers a second turn on from the first, and a link opened later starts live at lastSeq", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    await link.send({ type: "input", text: "3 * 4" });
    await link.waitFor(turnEnded("t1"));
    const first = logged(link.events);
    const late = await driver.open(s);
    expect(late.welcome).toMatchObject({ lastSeq: first.length, resumed: false, recovered: true, activeTurn: null });
    expect(await link.send({ type: "input", id: "q2", text: "what is 5 + 6" })).toEqual({ ok: true, turn: "t2" });
    await Promise.all([link.waitFor(turnEnded("t2")), late.waitFor(turnEnded("t2"))]);
    // The first turn left its input, both assistant texts and the tool output in the history.
    const priorChars = "3 * 4".length + demoText("3 * 4", WORDS, '{"value":12}').length + '{"value":12}'.length;
    const second = expectedTurn("t2", "what is 5 + 6", { value: 11 }, { id: link.sentId("q2"), firstSeq: first.length + 1, priorChars });
    expect(logged(link.events).slice(first.length)).toEqual(second);
    expect(logged(late.events)).toEqual(second);
    await Promise.all([link.close(), late.close()]);
  });

  it("leaves a snapshot over HTTP that matches what was streamed", async () => {
    const s = await env.session();
    const link = await driver.open(s);
    await link.send({ type: "input", text: "2+2" });
    await link.waitFor(turnEnded("t1"));
    const end = logged(link.events).at(-1);
    const snap = await snapshot(s);
    expect(snap).toMatchObject({ lastSeq: end?.seq, firstSeq: 1, activeTurn: null, pendingInput: "" });
    expect(snap.turns).toEqual([expect.objectContaining({ id: "t1", status: "completed", reason: "stop", input: "2+2", text: turnText(link.events, "t1") })]);
    expect(snap.history.map((h) => h.role)).toEqual(["user", "assistant", "tool", "assistant"]);
    await link.close();
  });
});
