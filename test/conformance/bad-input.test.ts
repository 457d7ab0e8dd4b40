// Every class of bad client message over every transport: a typed answer (code and field, never the
// message text), nothing logged, and the link and the session keep working. Drivers without `rawFrames`
// (the SDK) get the cases a typed client can write.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientMessage, ErrorCode, JSON_MAX_DEPTH } from "@agentwire/protocol";
import { GateAgent } from "../helpers/agents.js";
import { type AnswerError, type Link, type Outgoing, type SessionTarget, arrived, logged, turnEnded } from "./driver.js";
import { drivers } from "./drivers.js";
import { snapshot, useServer } from "./fixture.js";

const MAX_PAYLOAD = 4096;
const MAX_INPUT = 64;
const LIMITS = { AGENTWIRE_MAX_PAYLOAD_BYTES: MAX_PAYLOAD, AGENTWIRE_MAX_INPUT_CHARS: MAX_INPUT, AGENTWIRE_MAX_SYSTEM_CHARS: 32, AGENTWIRE_MAX_TOOLS_CHARS: 256 };

/** A deliberately malformed message: the protocol's types would not let it be written. Ids are echoed over WebSocket (the driver checks). */
const malformed = (message: Record<string, unknown>) => message as Outgoing;

/** Arrays nested `depth` levels deep. */
const nested = (depth: number): unknown => (depth === 0 ? [] : [nested(depth - 1)]);

const cases: { name: string; send: Outgoing; error: Omit<AnswerError, "retryable"> }[] = [
  { name: "not JSON", send: "{nope", error: { code: ErrorCode.InvalidJson } },
  { name: "empty", send: "", error: { code: ErrorCode.InvalidJson } },
  { name: "not an object", send: "[1,2]", error: { code: ErrorCode.InvalidMessage } },
  { name: "null", send: "null", error: { code: ErrorCode.InvalidMessage } },
  { name: "no type", send: malformed({ id: "b1", text: "x" }), error: { code: ErrorCode.InvalidMessage, field: "type" } },
  { name: "a type that is not a string", send: malformed({ id: "b2", type: 7 }), error: { code: ErrorCode.InvalidMessage, field: "type" } },
  { name: "unknown type", send: malformed({ id: "b3", type: "launch" }), error: { code: ErrorCode.UnknownType, field: "type" } },
  { name: "missing field", send: malformed({ id: "b4", type: "input" }), error: { code: ErrorCode.InvalidMessage, field: "text" } },
  { name: "mistyped field", send: malformed({ id: "b5", type: "input", text: "x", final: "yes" }), error: { code: ErrorCode.InvalidMessage, field: "final" } },
  { name: "unknown field", send: malformed({ id: "b6", type: "cancel", turnn: "t1" }), error: { code: ErrorCode.InvalidMessage, field: "turnn" } },
  { name: "bad nested field", send: malformed({ id: "b7", type: "configure", tools: [{ name: "bad name!" }] }), error: { code: ErrorCode.InvalidMessage, field: "tools.0.name" } },
  {
    name: "nested too deep",
    send: { id: "b8", type: "tool_result", callId: "c1", output: nested(JSON_MAX_DEPTH + 8) },
    // The message is level 1 and `output` level 2: the first array past the limit is output's 31st descendant.
    error: { code: ErrorCode.InvalidMessage, field: ["output", ...Array<string>(JSON_MAX_DEPTH - 1).fill("0")].join(".") },
  },
  { name: "empty input", send: { id: "b9", type: "input", text: "   " }, error: { code: ErrorCode.InvalidMessage, field: "text" } },
  { name: "above the payload limit", send: JSON.stringify({ type: "input", text: "x".repeat(MAX_PAYLOAD) }), error: { code: ErrorCode.PayloadTooLarge } },
  { name: "input above its limit", send: { id: "b10", type: "input", text: "x".repeat(MAX_INPUT + 1) }, error: { code: ErrorCode.InputTooLarge, field: "text" } },
  { name: "system prompt above its limit", send: { id: "b11", type: "configure", system: "s".repeat(33) }, error: { code: ErrorCode.InputTooLarge, field: "system" } },
  { name: "tools above their limit", send: { id: "b12", type: "configure", tools: [{ name: "big", description: "d".repeat(300) }] }, error: { code: ErrorCode.InputTooLarge, field: "tools" } },
  { name: "a tool declared twice", send: { id: "b13", type: "configure", tools: [{ name: "a" }, { name: "a" }] }, error: { code: ErrorCode.InvalidMessage, field: "tools.1.name" } },
  { name: "a tool named like a server tool", send: { id: "b14", type: "configure", tools: [{ name: "calculator" }] }, error: { code: ErrorCode.InvalidMessage, field: "tools.0.name" } },
  { name: "tool_result for no call", send: { id: "b15", type: "tool_result", callId: "c1", output: 1 }, error: { code: ErrorCode.ToolCallNotFound, field: "callId" } },
];

/**
 * What a driver without `rawFrames` can send: a message of the protocol's types (which is all a client's typed
 * calls can write), refused by the server for what it says rather than how it is written.
 */
const typed = (send: Outgoing) => typeof send !== "string" && ClientMessage.safeParse(send).success;

const started = (turn: string) => arrived((e) => e.type === "turn_start" && e.turn === turn);
const waiting = (turn: string) => arrived((e) => e.type === "token" && e.turn === turn);

describe.each(drivers)("bad input over $name", (driver) => {
  // Holds every turn after its first token until released: a turn is running exactly as long as the test wants.
  const agent = new GateAgent();
  const env = useServer(driver, LIMITS, { agent });
  let s: SessionTarget;
  let link: Link;
  beforeAll(async () => {
    s = await env.session();
    link = await driver.open(s);
  });
  afterAll(() => link.close());

  it.each(cases.filter((c) => driver.capabilities.rawFrames || typed(c.send)))("$name: $error.code", async (c) => {
    expect(await link.send(c.send)).toEqual({ ok: false, error: { ...c.error, retryable: false } });
  });

  it("logged nothing for any of them, changed nothing, and the same link still runs a turn", async () => {
    expect(link.events).toEqual([link.welcome]);
    expect(await snapshot(s)).toMatchObject({ lastSeq: 0, pendingInput: "", config: { tools: [] }, turns: [] });
    expect((await snapshot(s)).config.system).toBeUndefined();
    expect(await link.send({ type: "input", id: "go", text: "go" })).toEqual({ ok: true, turn: "t1" });
    await link.waitFor(waiting("t1"), "the held turn");
    agent.release();
    await link.waitFor(turnEnded("t1"));
    expect(logged(link.events)).toEqual([
      // The input id turn_start echoes is the one on the wire (the SDK's own).
      { type: "turn_start", seq: 1, turn: "t1", input: "go", id: link.sentId("go") },
      { type: "token", seq: 2, turn: "t1", text: "waiting" },
      { type: "token", seq: 3, turn: "t1", text: " done" },
      { type: "usage", seq: 4, turn: "t1", inputTokens: 3, outputTokens: 2, partial: false },
      { type: "turn_end", seq: 5, turn: "t1", status: "completed", reason: "stop" },
    ]);
  });

  it("input that would overflow the buffer is refused and not buffered", async () => {
    const before = logged(link.events).length;
    expect(await link.send({ type: "input", text: "a".repeat(40), final: false })).toEqual({ ok: true });
    const overflow = { ok: false, error: { code: ErrorCode.InputTooLarge, field: "text", retryable: false } };
    expect(await link.send({ type: "input", text: "b".repeat(MAX_INPUT - 39), final: false })).toEqual(overflow);
    expect(await link.send({ type: "input", text: "b".repeat(MAX_INPUT - 39) })).toEqual(overflow);
    expect(await link.send({ type: "input", id: "q", text: "?" })).toEqual({ ok: true, turn: "t2" });
    await link.waitFor(started("t2"));
    expect(logged(link.events)[before]).toEqual({ type: "turn_start", seq: before + 1, turn: "t2", input: `${"a".repeat(40)}?`, id: link.sentId("q") });
    await link.waitFor(waiting("t2"), "the held turn");
    agent.release();
    await link.waitFor(turnEnded("t2"));
  });

  it("a final input while a turn runs is turn_active (retryable, field interrupt); non-final input is still taken", async () => {
    expect(await link.send({ type: "input", id: "first", text: "first" })).toEqual({ ok: true, turn: "t3" });
    await link.waitFor(waiting("t3"), "the held turn");
    expect(await link.send({ type: "input", text: "second" })).toEqual({ ok: false, error: { code: ErrorCode.TurnActive, field: "interrupt", retryable: true } });
    expect(await link.send({ type: "input", text: "later ", final: false })).toEqual({ ok: true });
    agent.release();
    await link.waitFor(turnEnded("t3"));
    expect(logged(link.events).filter((e) => e.turn === "t3").map((e) => e.type)).toEqual(["turn_start", "token", "token", "usage", "turn_end"]);
    expect(await link.send({ type: "input", id: "then", text: "then" })).toEqual({ ok: true, turn: "t4" });
    await link.waitFor(waiting("t4"), "the held turn");
    expect(logged(link.events).find((e) => e.type === "turn_start" && e.turn === "t4")).toMatchObject({ input: "later then" });
    agent.release();
    await link.waitFor(turnEnded("t4"));
    const seqs = logged(link.events).map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(link.events.some((e) => e.type === "error")).toBe(false);
  });
});
