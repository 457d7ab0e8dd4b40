// Exactly-once client messages: a message resent with the id it had is answered as the first time and applied once,
// on one node and after another node takes the session over.
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage } from "@agentwire/protocol";
import { MemoryBroker, MemoryStore } from "../../src/broker/broker-memory.js";
import { Engine, type Session } from "../../src/engine/index.js";
import { MessageIds, fingerprint } from "../../src/engine/message-ids.js";
import { GateAgent, RecordingDemoAgent } from "../helpers/agents.js";
import { engineSession } from "../helpers/engine-session.js";
import { FakeSink } from "../helpers/fake-sink.js";

const ended = (ms: ServerMessage[], n = 1) => ms.filter((m) => m.type === "turn_end").length >= n;
const of = <T extends ServerMessage["type"]>(ms: ServerMessage[], type: T) => ms.filter((m): m is Extract<ServerMessage, { type: T }> => m.type === type);
const input = (id: string, text: string, final = true) => ({ type: "input" as const, id, text, final, interrupt: false });

describe("the message id window", () => {
  it("keeps the newest ids, and a capacity of 0 keeps none", () => {
    const ids = new MessageIds(2);
    ids.remember("a", 1, "t1");
    ids.remember("b", 2);
    ids.remember("c", 3);
    expect(ids.entries()).toEqual([["b", 2, null], ["c", 3, null]]);
    expect(ids.find("a", 1)).toBeUndefined();
    expect(MessageIds.restore(ids.entries(), 2).find("c", 3)).toEqual({ turn: undefined, print: 3 });
    const off = new MessageIds(0);
    off.remember("a", 1);
    expect(off.size).toBe(0);
    expect(fingerprint({ type: "input", text: "a" })).not.toBe(fingerprint({ type: "input", text: "b" }));
    // The log names the turn of an id a saved state knew without one, and adds ids the state lacked.
    const learned = new MessageIds(4);
    learned.remember("m1", 7);
    learned.learn("m1", "t3");
    learned.learn("m2", "t4");
    expect(learned.entries()).toEqual([["m1", 7, "t3"], ["m2", -1, "t4"]]);
  });
});

describe("a resent message", () => {
  it("final input: one turn, and the resend gets the ack the first one got", async () => {
    const agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 2 });
    const { sink, attachment, session } = await engineSession({ agent });
    attachment.receive(input("m1", "what is 2 + 2"));
    await sink.until((ms) => ended(ms));
    attachment.receive(input("m1", "what is 2 + 2"));
    await sink.until((ms) => of(ms, "ack").length === 2);
    expect(of(sink.messages, "ack")).toEqual([{ type: "ack", id: "m1", turn: "t1" }, { type: "ack", id: "m1", turn: "t1" }]);
    expect(of(sink.messages, "turn_start")).toEqual([{ type: "turn_start", seq: 1, turn: "t1", input: "what is 2 + 2", id: "m1" }]);
    expect(agent.requests.filter((r) => r.step === 0)).toHaveLength(1);
    expect(session.snapshot().turns).toHaveLength(1);
  });

  it("while its turn still runs: acked with that turn, not refused as turn_active", async () => {
    const agent = new GateAgent();
    const { sink, attachment } = await engineSession({ agent });
    attachment.receive(input("m1", "hello"));
    await sink.until((ms) => ms.some((m) => m.type === "token"));
    attachment.receive(input("m1", "hello"));
    expect(sink.messages.at(-1)).toEqual({ type: "ack", id: "m1", turn: "t1" });
    agent.release();
    await sink.until((ms) => ended(ms));
    expect(of(sink.messages, "error")).toEqual([]);
    expect(agent.signals).toHaveLength(1);
  });

  it("non-final input is buffered once; a resent configure is acked again and changes nothing", async () => {
    const { sink, attachment, session } = await engineSession({ agent: new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 2 }) });
    attachment.receive(input("p1", "what is ", false));
    attachment.receive(input("p1", "what is ", false));
    attachment.receive(input("p2", "3 * 3", false));
    expect(session.snapshot().pendingInput).toBe("what is 3 * 3");
    attachment.receive({ type: "configure", id: "c1", system: "one" });
    attachment.receive({ type: "configure", id: "c2", system: "two" });
    attachment.receive({ type: "configure", id: "c1", system: "one" });
    expect(session.snapshot().config.system).toBe("two");
    expect(of(sink.messages, "ack").map((a) => a.id)).toEqual(["p1", "p1", "p2", "c1", "c2", "c1"]);
  });

  it("the same id on a different message is refused on field id and applies nothing", async () => {
    const { sink, attachment, session } = await engineSession({ agent: new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 2 }) });
    attachment.receive(input("m1", "first", false));
    attachment.receive(input("m1", "second", false));
    expect(sink.messages.at(-1)).toMatchObject({ type: "error", code: ErrorCode.InvalidMessage, field: "id", id: "m1" });
    expect(session.snapshot().pendingInput).toBe("first");
  });

  it("a refused message may be sent again with its id, and is taken once it can be", async () => {
    const agent = new GateAgent();
    const { sink, attachment } = await engineSession({ agent });
    attachment.receive(input("m1", "first"));
    await sink.until((ms) => ms.some((m) => m.type === "token"));
    attachment.receive(input("m2", "second"));
    expect(sink.messages.at(-1)).toMatchObject({ type: "error", code: ErrorCode.TurnActive, id: "m2" });
    agent.release();
    await sink.until((ms) => ended(ms));
    attachment.receive(input("m2", "second"));
    await sink.until((ms) => ms.some((m) => m.type === "token" && m.turn === "t2"));
    expect(of(sink.messages, "ack")).toEqual([{ type: "ack", id: "m1", turn: "t1" }, { type: "ack", id: "m2", turn: "t2" }]);
    agent.release();
  });

  it("past the window an old id acts again; with the window at 0 every resend acts", async () => {
    const { sink, attachment, session } = await engineSession({ agent: new RecordingDemoAgent(), limits: { messageIdWindow: 2 } });
    for (const id of ["a", "b", "c", "a"]) attachment.receive(input(id, "x", false));
    expect(session.snapshot().pendingInput).toBe("xxxx");
    const off = await engineSession({ agent: new RecordingDemoAgent(), limits: { messageIdWindow: 0 } });
    off.attachment.receive(input("a", "y", false));
    off.attachment.receive(input("a", "y", false));
    expect(off.session.snapshot().pendingInput).toBe("yy");
    expect(of(sink.messages, "error")).toEqual([]);
  });
});

describe("after a takeover", () => {
  const engines: Engine[] = [];
  afterEach(() => {
    for (const e of engines.splice(0)) e.close();
  });

  it("the new owner answers a resent input with the turn the lost owner started, and starts no other", async () => {
    const store = new MemoryStore();
    const cluster = { leaseTtlMs: 300, forwardTimeoutMs: 500, batchMs: 1 };
    const a = new Engine({ agent: new GateAgent(), broker: new MemoryBroker(store, "A"), cluster });
    const bAgent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 2 });
    const b = new Engine({ agent: bAgent, broker: new MemoryBroker(store, "B"), cluster });
    engines.push(a, b);
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    const onA = new FakeSink();
    a.attach(a.get(created.sessionId) as Session, onA, undefined).receive({ type: "configure", id: "c1", system: "kept" });
    a.attach(a.get(created.sessionId) as Session, new FakeSink(), undefined).receive(input("m1", "hello"));
    await onA.until((ms) => ms.some((m) => m.type === "token"));
    await b.authorizeAny(created.sessionId, created.token);
    const onB = new FakeSink();
    const attachment = b.attach(b.get(created.sessionId) as Session, onB, undefined);
    a.close(); // stops renewing and persisting, as a killed process would
    await onB.until((ms) => ended(ms), 5000);
    expect((b.get(created.sessionId) as Session).role).toBe("owner");

    attachment.receive(input("m1", "hello"));
    attachment.receive({ type: "configure", id: "c1", system: "kept" });
    await onB.until((ms) => of(ms, "ack").length === 2);
    expect(of(onB.messages, "ack")).toEqual([{ type: "ack", id: "m1", turn: "t1" }, { type: "ack", id: "c1" }]);
    // B joined after t1 began (no replay) and has ended it owner_lost: a new turn would show here.
    expect(of(onB.messages, "turn_start")).toEqual([]);
    expect(of(onB.messages, "turn_end")).toEqual([{ type: "turn_end", seq: expect.any(Number), turn: "t1", status: "failed", reason: "owner_lost" }]);
    expect(bAgent.requests).toHaveLength(0);
  });
});
