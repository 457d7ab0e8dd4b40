// One contract for every Broker implementation: run it over the memory broker and over real Redis.
import { describe, expect, it } from "vitest";
import { type Broker, BrokerTimeout, type StoredEvent } from "../../src/broker/broker.js";

export interface BrokerPair {
  a: Broker;
  b: Broker;
  close(): Promise<void>;
}

const limits = { maxEvents: 100, ttlMs: 60_000 };
const ev = (from: number, n: number): StoredEvent[] => Array.from({ length: n }, (_, i) => ({ seq: from + i, frame: `{"type":"token","seq":${from + i},"turn":"t1","text":"x${from + i}"}` }));

export function brokerContract(name: string, makePair: () => Promise<BrokerPair>): void {
  describe(`Broker contract: ${name}`, () => {
    const withPair = (fn: (p: BrokerPair, sid: string) => Promise<void>) => async () => {
      const pair = await makePair();
      try {
        await fn(pair, `s_${Math.random().toString(36).slice(2)}`);
      } finally {
        await pair.close();
      }
    };

    it("stores, loads and deletes session records", withPair(async ({ a, b }, sid) => {
      expect(await b.loadSession(sid)).toBeNull();
      await a.saveSession({ sessionId: sid, token: "tok", createdAt: 5, state: '{"x":1}' }, 60_000);
      expect(await b.loadSession(sid)).toEqual({ sessionId: sid, token: "tok", createdAt: 5, state: '{"x":1}' });
      await b.deleteSession(sid);
      expect(await a.loadSession(sid)).toBeNull();
    }));

    it("gives a lease to one node at a time", withPair(async ({ a, b }, sid) => {
      expect(await a.leaseHolder(sid)).toBeNull();
      expect(await a.acquireLease(sid, 10_000)).toBe(a.nodeId);
      expect(await b.acquireLease(sid, 10_000)).toBe(a.nodeId);
      expect(await a.acquireLease(sid, 10_000)).toBe(a.nodeId);
      expect(await b.renewLeases([sid], 10_000)).toEqual([sid]);
      expect(await a.renewLeases([sid], 10_000)).toEqual([]);
      await b.releaseLease(sid);
      expect(await b.leaseHolder(sid)).toBe(a.nodeId);
      await a.releaseLease(sid);
      expect(await b.acquireLease(sid, 10_000)).toBe(b.nodeId);
    }));

    it("lets a lease lapse after its ttl", withPair(async ({ a, b }, sid) => {
      await a.acquireLease(sid, 50);
      const deadline = Date.now() + 2000;
      while ((await b.leaseHolder(sid)) !== null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await b.acquireLease(sid, 10_000)).toBe(b.nodeId);
    }));

    it("appends only for the lease holder, only at the next seq", withPair(async ({ a, b }, sid) => {
      await a.acquireLease(sid, 10_000);
      expect(await b.append(sid, ev(1, 2), limits)).toEqual({ ok: false, reason: "not_owner" });
      expect(await a.append(sid, ev(1, 3), limits)).toEqual({ ok: true });
      expect(await a.append(sid, ev(5, 1), limits)).toEqual({ ok: false, reason: "seq_mismatch", lastSeq: 3 });
      expect(await a.append(sid, ev(3, 1), limits)).toEqual({ ok: false, reason: "seq_mismatch", lastSeq: 3 });
      expect(await a.append(sid, ev(4, 2), limits)).toEqual({ ok: true });
      expect(await b.lastSeq(sid)).toBe(5);
      expect(await a.append(sid, ev(9, 1), limits, true)).toEqual({ ok: true });
      expect(await b.lastSeq(sid)).toBe(9);
    }));

    it("reads after any position, from the start with -1, and says trimmed for lost positions", withPair(async ({ a, b }, sid) => {
      expect(await b.read(sid, 0, 10)).toEqual({ ok: true, events: [] });
      await a.acquireLease(sid, 10_000);
      await a.append(sid, ev(1, 6), { maxEvents: 4, ttlMs: 60_000 });
      expect(await b.read(sid, 2, 10)).toEqual({ ok: true, events: ev(3, 4) });
      expect(await b.read(sid, -1, 10)).toEqual({ ok: true, events: ev(3, 4) });
      expect(await b.read(sid, 3, 2)).toEqual({ ok: true, events: ev(4, 2) });
      expect(await b.read(sid, 6, 10)).toEqual({ ok: true, events: [] });
      expect(await b.read(sid, 1, 10)).toEqual({ ok: false, reason: "trimmed" });
      expect(await b.read(sid, 7, 10)).toEqual({ ok: false, reason: "trimmed" });
    }));

    it("delivers appended events to subscribers asynchronously, in order", withPair(async ({ a, b }, sid) => {
      await a.acquireLease(sid, 10_000);
      const got: StoredEvent[] = [];
      let wake: () => void = () => {};
      const done = new Promise<void>((r) => (wake = r));
      const unsubscribe = await b.subscribe(sid, {
        events: (events) => {
          got.push(...events);
          if (got.length >= 10) wake();
        },
        deleted: () => {},
      });
      const appended = a.append(sid, ev(1, 4), limits);
      expect(got).toEqual([]);
      await appended;
      await a.append(sid, ev(5, 1), limits);
      await a.append(sid, ev(6, 5), limits);
      await done;
      expect(got).toEqual(ev(1, 10));
      await unsubscribe();
    }));

    it("tells a session's subscribers on every node when it is deleted", withPair(async ({ a, b }, sid) => {
      await a.saveSession({ sessionId: sid, token: "tok", createdAt: 1, state: "{}" }, 60_000);
      await a.acquireLease(sid, 10_000);
      let deleted: () => void = () => {};
      const heard = new Promise<void>((r) => (deleted = r));
      const got: StoredEvent[] = [];
      const unsubscribe = await b.subscribe(sid, { events: (events) => got.push(...events), deleted: () => deleted() });
      await a.append(sid, ev(1, 2), limits);
      await a.deleteSession(sid);
      await heard;
      expect(got).toEqual(ev(1, 2));
      expect(await b.loadSession(sid)).toBeNull();
      expect(await b.leaseHolder(sid)).toBeNull();
      await unsubscribe();
    }));

    it("keeps a node's heartbeat alive until it lapses or is taken back", withPair(async ({ a, b }) => {
      expect(await b.nodeIncarnations([a.nodeId, "n_nobody"])).toEqual([null, null]);
      await a.heartbeat(10_000);
      expect(await b.nodeIncarnations([a.nodeId, "n_nobody", b.nodeId])).toEqual([a.incarnation, null, null]);
      expect(a.incarnation).not.toBe(b.incarnation);
      await a.heartbeat(0);
      expect(await b.nodeIncarnations([a.nodeId])).toEqual([null]);
      expect(await b.nodeIncarnations([])).toEqual([]);
    }));

    it("carries requests to a node and its replies back; an absent node times out", withPair(async ({ a, b }, sid) => {
      b.onRequest(async (req) => ({ echo: req.body, kind: req.kind, sessionId: req.sessionId, node: b.nodeId }));
      expect(await a.request(b.nodeId, { kind: "k", sessionId: sid, body: { n: 1 } }, 2000)).toEqual({ echo: { n: 1 }, kind: "k", sessionId: sid, node: b.nodeId });
      await expect(a.request("n_nobody", { kind: "k", sessionId: sid, body: null }, 100)).rejects.toBeInstanceOf(BrokerTimeout);
    }));
  });
}
