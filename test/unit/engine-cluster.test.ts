import { afterEach, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { MemoryBroker, MemoryStore } from "../../src/broker/broker-memory.js";
import { Engine, type Session } from "../../src/engine/index.js";
import { GateAgent, RecordingDemoAgent } from "../helpers/agents.js";
import { FakeSink } from "../helpers/fake-sink.js";

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function node(store: MemoryStore, name: string, agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 8 })) {
  const engine = new Engine({ agent, broker: new MemoryBroker(store, name), cluster: { leaseTtlMs: 300, forwardTimeoutMs: 500, batchMs: 1 } });
  engines.push(engine);
  return engine;
}

const seqs = (ms: ServerMessage[]) => ms.flatMap((m) => ("seq" in m && m.seq !== undefined ? [m.seq] : []));
const ended = (ms: ServerMessage[], n = 1) => ms.filter((m) => m.type === "turn_end").length >= n;

describe("engines sharing a broker", () => {
  it("a client on node B drives a session owned by node A and sees A's exact sequence", async () => {
    const store = new MemoryStore();
    const a = node(store, "A");
    const b = node(store, "B");
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    const onA = new FakeSink();
    a.attach(a.get(created.sessionId) as Session, onA, undefined);
    const auth = await b.authorizeAny(created.sessionId, created.token);
    expect(auth.ok).toBe(true);
    const replica = b.get(created.sessionId) as Session;
    expect(replica.role).toBe("replica");
    expect((await b.authorizeAny(created.sessionId, "wrong")).ok).toBe(false);
    const onB = new FakeSink();
    const attachment = b.attach(replica, onB, undefined);
    attachment.receive({ type: "input", id: "q", text: "6 * 7", final: true, interrupt: false });
    await onA.until((ms) => ended(ms));
    const fromB = await onB.until((ms) => ended(ms));
    const logged = (ms: ServerMessage[]) => ms.filter((m) => "seq" in m && m.seq !== undefined);
    expect(logged(fromB)).toEqual(logged(onA.messages));
    expect(seqs(fromB)).toEqual(Array.from({ length: seqs(fromB).length }, (_, i) => i + 1));
    expect(fromB.find((m) => m.type === "ack")).toEqual({ type: "ack", id: "q", turn: "t1" });
    const snapshot = await b.snapshot(replica);
    expect(snapshot.turns[0]).toMatchObject({ id: "t1", status: "completed" });
  });

  it("resumes on another node from any position with exact events", async () => {
    const store = new MemoryStore();
    const a = node(store, "A");
    const b = node(store, "B");
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    const onA = new FakeSink();
    const attachment = a.attach(a.get(created.sessionId) as Session, onA, undefined);
    attachment.receive({ type: "input", text: "1 + 1", final: true, interrupt: false });
    const all = (await onA.until((ms) => ended(ms))).filter((m) => "seq" in m && m.seq !== undefined);
    await b.authorizeAny(created.sessionId, created.token);
    for (const k of [0, 1, 5, all.length - 1]) {
      const onB = new FakeSink();
      b.attach(b.get(created.sessionId) as Session, onB, k);
      const got = await onB.until((ms) => ms.filter((m) => m.type !== "session").length === all.length - k);
      expect(got[0]).toMatchObject({ type: "session", resumed: true, recovered: true });
      expect(got.slice(1)).toEqual(all.slice(k));
    }
  });

  it("when the owner dies mid-turn, a node with a client takes over and ends the turn owner_lost", async () => {
    const store = new MemoryStore();
    const gate = new GateAgent();
    const a = node(store, "A", gate as never);
    const b = node(store, "B");
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    await b.authorizeAny(created.sessionId, created.token);
    const onB = new FakeSink();
    const attachment = b.attach(b.get(created.sessionId) as Session, onB, undefined);
    attachment.receive({ type: "input", text: "hello", final: true, interrupt: false });
    await onB.until((ms) => ms.some((m) => m.type === "token"));
    a.close(); // stops renewing and persisting, as a killed process would
    const ms = await onB.until((m) => ended(m), 5000);
    const tail = ms.filter((m) => "seq" in m && m.seq !== undefined).slice(-3);
    expect(tail).toEqual([
      { type: "error", seq: 3, turn: "t1", code: "owner_lost", message: expect.any(String), retryable: true },
      { type: "usage", seq: 4, turn: "t1", inputTokens: 0, outputTokens: 0, partial: true },
      { type: "turn_end", seq: 5, turn: "t1", status: "failed", reason: "owner_lost" },
    ]);
    const session = b.get(created.sessionId) as Session;
    expect(session.role).toBe("owner");
    expect(session.history.map((h) => h.role)).toEqual(["user", "assistant"]);
    attachment.receive({ type: "input", text: "2 + 2", final: true, interrupt: false });
    const next = await onB.until((m) => ended(m, 2));
    expect(next.filter((m) => m.type === "turn_start").map((m) => (m as { turn: string }).turn)).toEqual(["t1", "t2"]);
    expect(seqs(next)).toEqual(Array.from({ length: seqs(next).length }, (_, i) => i + 1));
  });
});

describe("a turn longer than the log", () => {
  it("still ends owner_lost when its owner dies, though its turn_start has left every log", async () => {
    const store = new MemoryStore();
    // Streams far more events than the logs keep, then waits until cancelled.
    const long = {
      name: "long",
      async step(_r: unknown, sink: { text(t: string): void }, signal: AbortSignal) {
        for (let i = 0; i < 60; i++) sink.text(`w${i} `);
        await new Promise((_, reject) => signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true }));
        return { finish: "stop" as const, toolCalls: [] };
      },
    };
    const limits = { logMaxEvents: 16 };
    const cluster = { leaseTtlMs: 300, forwardTimeoutMs: 500, batchMs: 1 };
    const a = new Engine({ agent: long, broker: new MemoryBroker(store, "A"), cluster, limits });
    const b = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 2 }), broker: new MemoryBroker(store, "B"), cluster, limits });
    engines.push(a, b);
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    const onA = new FakeSink();
    a.attach(a.get(created.sessionId) as Session, onA, undefined).receive({ type: "input", text: "go on and on", final: true, interrupt: false });
    await onA.until((ms) => ms.filter((m) => m.type === "token").length === 60);
    await b.authorizeAny(created.sessionId, created.token);
    const onB = new FakeSink();
    b.attach(b.get(created.sessionId) as Session, onB, 0);
    a.close(); // stops renewing and persisting, as a killed process would
    const ms = await onB.until((m) => ended(m), 5000);
    expect(ms.find((m) => m.type === "turn_start")).toBeUndefined(); // long gone from the log
    expect(ms.filter((m) => m.type === "turn_end")).toEqual([{ type: "turn_end", seq: expect.any(Number), turn: "t1", status: "failed", reason: "owner_lost" }]);
    const session = b.get(created.sessionId) as Session;
    expect(session.history[0]).toEqual({ role: "user", text: "go on and on" });
  });
});

describe("a replica between owners", () => {
  it("answers a message with owner_unavailable instead of forwarding it to itself until the stack overflows", async () => {
    const store = new MemoryStore();
    const a = node(store, "A");
    const b = node(store, "B");
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    await b.authorizeAny(created.sessionId, created.token);
    const replica = b.get(created.sessionId) as Session;
    expect(replica.role).toBe("replica");
    // As after a takeover that could not complete: still a replica, but following nobody.
    (b as unknown as { cluster: { replicas: Map<string, unknown> } }).cluster.replicas.delete(created.sessionId);
    const sink = new FakeSink();
    b.attach(replica, sink, undefined).receive({ type: "input", id: "m1", text: "hi", final: true, interrupt: false });
    const answer = (await sink.until((ms) => ms.some((m) => m.type === "error"))).find((m) => m.type === "error");
    expect(answer).toMatchObject({ code: "owner_unavailable", retryable: true, id: "m1" });
  });
});

describe("a store that restarts empty", () => {
  it("makes other nodes answer owner_unavailable, not session_not_found, until owners could have stored again", async () => {
    const store = new MemoryStore();
    const ownerBroker = new MemoryBroker(store, "A");
    const a = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0 }), broker: ownerBroker, cluster: { leaseTtlMs: 300 } });
    let now = 1_000_000;
    const b = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0 }), broker: new MemoryBroker(store, "B"), cluster: { leaseTtlMs: 300 }, now: () => now });
    engines.push(a, b);
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    // The owner is gone (it would store the session again on its reconnect), then the store restarts.
    a.close();
    await ownerBroker.close();
    store.restart();
    expect(await b.authorizeAny(created.sessionId, created.token)).toEqual({ ok: false, code: "owner_unavailable" });
    now += 299;
    expect(await b.authorizeAny(created.sessionId, created.token)).toEqual({ ok: false, code: "owner_unavailable" });
    // Past one lease time every live owner has renewed and stored its sessions: now it is really gone.
    now += 1;
    expect(await b.authorizeAny(created.sessionId, created.token)).toEqual({ ok: false, code: "session_not_found" });
  });
});

/** Counts what a node asks the broker, and wakes waiters when a count is reached. */
class CountingBroker extends MemoryBroker {
  readonly calls = { leaseHolder: 0, nodeIncarnations: 0, acquireLease: 0, renewLeases: 0 };
  private waiters: { check: () => boolean; wake: () => void }[] = [];

  until(check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ check, wake }));
  }

  private counted(kind: keyof CountingBroker["calls"]): void {
    this.calls[kind]++;
    this.waiters = this.waiters.filter((w) => (w.check() ? (w.wake(), false) : true));
  }

  override async leaseHolder(sessionId: string) {
    this.counted("leaseHolder");
    return super.leaseHolder(sessionId);
  }

  override async nodeIncarnations(nodeIds: readonly string[]) {
    this.counted("nodeIncarnations");
    return super.nodeIncarnations(nodeIds);
  }

  override async acquireLease(sessionId: string, ttlMs: number) {
    this.counted("acquireLease");
    return super.acquireLease(sessionId, ttlMs);
  }

  override async renewLeases(sessionIds: readonly string[], ttlMs: number) {
    this.counted("renewLeases");
    return super.renewLeases(sessionIds, ttlMs);
  }
}

describe("a follower when the store restarts empty", () => {
  it("keeps the session and its clients for a lease time (the owner may store it again), then ends it", async () => {
    const store = new MemoryStore();
    const ownerBroker = new MemoryBroker(store, "A");
    const a = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0 }), broker: ownerBroker, cluster: { leaseTtlMs: 300 } });
    let now = 1_000_000;
    const counting = new CountingBroker(store, "B");
    const b = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0 }), broker: counting, cluster: { leaseTtlMs: 300 }, now: () => now });
    engines.push(a, b);
    const created = await a.createSession();
    if (!created) throw new Error("no session");
    await b.authorizeAny(created.sessionId, created.token);
    const sink = new FakeSink();
    b.attach(b.get(created.sessionId) as Session, sink, undefined);
    a.close();
    await ownerBroker.close();
    store.restart();
    // Several watch passes find the lease free and the session unknown: within a lease time nothing ends.
    const seen = counting.calls.leaseHolder;
    await counting.until(() => counting.calls.leaseHolder >= seen + 3);
    expect(sink.closed).toBeNull();
    expect(b.get(created.sessionId)).toBeDefined();
    // Past it, the session is really gone: its clients are told so.
    now += 300;
    await sink.until(() => sink.closed !== null, 5000);
    expect(sink.closed?.code).toBe(4410);
  });
});

describe("following many sessions", () => {
  it("asks once per owner node whether it lives, not once per session, and takes all over when it dies", async () => {
    const store = new MemoryStore();
    const ownerBroker = new MemoryBroker(store, "A");
    const a = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0 }), broker: ownerBroker, cluster: { leaseTtlMs: 300 } });
    const follower = new CountingBroker(store, "B");
    const b = new Engine({ agent: new RecordingDemoAgent({ tokensPerSecond: 0 }), broker: follower, cluster: { leaseTtlMs: 300 } });
    engines.push(a, b);
    const created: { sessionId: string; token: string }[] = [];
    for (let i = 0; i < 50; i++) {
      const c = await a.createSession();
      if (!c) throw new Error("no session");
      created.push(c);
    }
    for (const c of created) {
      expect((await b.authorizeAny(c.sessionId, c.token)).ok).toBe(true);
      b.attach(b.get(c.sessionId) as Session, new FakeSink(), undefined);
    }
    // Three watch passes while A lives: one liveness question each, no lease read per session.
    const asked = follower.calls.leaseHolder;
    const passes = follower.calls.nodeIncarnations;
    await follower.until(() => follower.calls.nodeIncarnations >= passes + 3);
    expect(follower.calls.leaseHolder).toBe(asked);
    // A dies: no more heartbeats or renewals. Its leases lapse with its heartbeat, and B takes every session.
    a.close();
    await ownerBroker.close();
    // Checked again at each of B's broker calls: its watch while it follows, its renewals once it owns.
    await follower.until(() => created.every((c) => b.get(c.sessionId)?.role === "owner"));
    expect(follower.calls.leaseHolder).toBeGreaterThanOrEqual(asked + 50);
  });
});
