import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { SseClient } from "../helpers/sse-client.js";
import { requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { startRedisCluster } from "../helpers/redis-cluster.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();
const LEASE_MS = 1000;
let prefixCount = 0;

type Logged = ServerMessage & { seq: number };

async function create(node: NodeProc): Promise<{ sessionId: string; token: string }> {
  const res = await fetch(`${node.base}/v1/sessions`, { method: "POST" });
  expect(res.status).toBe(201);
  return (await res.json()) as { sessionId: string; token: string };
}

async function post(node: NodeProc, s: { sessionId: string; token: string }, body: unknown) {
  const res = await fetch(`${node.base}/v1/sessions/${s.sessionId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

interface Backend {
  /** Env that points a node at this Redis. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const backends: [string, () => Promise<Backend>][] = [
  ["one Redis", async () => {
    const redis = await startRedis();
    return { env: { REDIS_URL: redis.url }, stop: () => redis.stop() };
  }],
  ["a three-master Redis Cluster", async () => {
    const cluster = await startRedisCluster();
    return { env: { AGENTWIRE_REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(",") }, stop: () => cluster.stop() };
  }],
];

describe.runIf(run).each(backends)("several nodes over %s", (_name, startBackend) => {
  let redis: Backend;
  let nodes: NodeProc[] = [];
  const nodeEnv = (backend: Backend, prefix: string, extra: Record<string, string | number> = {}) => ({
    ...backend.env,
    AGENTWIRE_REDIS_PREFIX: prefix,
    AGENTWIRE_LEASE_TTL_MS: LEASE_MS,
    AGENTWIRE_DEMO_TOKENS_PER_SEC: 0,
    ...extra,
  });
  beforeAll(async () => {
    redis = await startBackend();
    const prefix = `n${++prefixCount}:`;
    nodes = await Promise.all(["A", "B", "C"].map((n) => startNode(n, nodeEnv(redis, prefix, { AGENTWIRE_DEMO_TOKENS_PER_SEC: 400, AGENTWIRE_DEMO_REPLY_WORDS: 30 }))));
    await Promise.all(nodes.map((n) => eventually(`${n.name} ready`, async () => (await fetch(`${n.base}/readyz`)).status === 200)));
  }, 30_000);
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await redis?.stop();
  });

  it("WS on A, input POSTed to B, SSE on C: all see one identical sequence", async () => {
    const [a, b, c] = nodes as [NodeProc, NodeProc, NodeProc];
    const s = await create(a);
    const onA = await TestClient.connect(TestClient.sessionUrl(a.wsBase, s, 0));
    const onC = await SseClient.open(SseClient.url(c.base, s, "afterSeq=0"));
    await Promise.all([onA.next("session"), onC.next("session")]);
    const accepted = await post(b, s, { type: "input", text: "what is 5 * 8" });
    expect(accepted.status).toBe(202);
    const [endA, endC] = await Promise.all([onA.waitForTurnEnd(), onC.waitForTurnEnd()]);
    expect(endA).toEqual(endC);
    expect(logged(onC.messages)).toEqual(logged(onA.messages));
    // SSE ids carry the same positions as the WebSocket's seq.
    expect(onC.events.filter((e) => e.id !== undefined && e.event !== "session").map((e) => Number(e.id))).toEqual(logged(onA.messages).map((e) => e.seq));
    const events = logged(onA.messages);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    const plan = planDemo("what is 5 * 8", 1, 30);
    expect(turnText(onC.messages, "t1")).toBe([...plan.intro, ...plan.reply('{"value":40}', false)].join(""));
    onA.close();
    onC.close();
  });

  it("SSE resume on another node with Last-Event-ID, and a snapshot from any node", async () => {
    const [a, b, c] = nodes as [NodeProc, NodeProc, NodeProc];
    const s = await create(b);
    const first = await SseClient.open(SseClient.url(a.base, s, "afterSeq=0"));
    await post(c, s, { type: "input", text: "9 - 3" });
    await first.waitUntil(() => logged(first.messages).length >= 5, "5 events");
    first.close();
    const seen = logged(first.messages);
    const lastId = String((seen.at(-1) as Logged).seq);
    const second = await SseClient.open(SseClient.url(c.base, s), { "last-event-id": lastId });
    await second.waitForTurnEnd();
    const all = [...seen, ...logged(second.messages)];
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    second.close();
    for (const node of [a, b, c]) {
      const snap = (await (await fetch(`${node.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { lastSeq: number; turns: { id: string; status: string }[] };
      expect(snap.lastSeq, node.name).toBe((all.at(-1) as Logged).seq);
      expect(snap.turns.map((t) => [t.id, t.status]), node.name).toEqual([["t1", "completed"]]);
    }
  });

  it("DELETE on one node closes the session's clients on every node with 4410", async () => {
    const [a, b, c] = nodes as [NodeProc, NodeProc, NodeProc];
    const s = await create(a);
    const onA = await TestClient.connect(TestClient.sessionUrl(a.wsBase, s, 0));
    const onC = await TestClient.connect(TestClient.sessionUrl(c.wsBase, s, 0));
    await Promise.all([onA.next("session"), onC.next("session")]);
    const res = await fetch(`${b.base}/v1/sessions/${s.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(204);
    expect(await onA.waitClosed()).toBe(4410);
    expect(await onC.waitClosed()).toBe(4410);
    const gone = await fetch(`${c.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(gone.status).toBe(404);
  });

  it("a node that does not hold the session accepts the link, then welcomes it or closes it with a code", async () => {
    const [a, b] = nodes as [NodeProc, NodeProc, NodeProc];
    const s = await create(a);
    const closeCode = async (url: string) => {
      const link = await TestClient.connect(url);
      return link.waitClosed();
    };
    expect(await closeCode(TestClient.sessionUrl(b.wsBase, { sessionId: s.sessionId, token: "wrong-token" }))).toBe(4401);
    expect(await closeCode(TestClient.sessionUrl(b.wsBase, { sessionId: "s_nosuchsession", token: s.token }))).toBe(4404);
    // Frames sent before the welcome are kept and answered after it (pings go to the owner on A,
    // so their pongs may come after the local answer to the bad frame).
    const early = await TestClient.connect(TestClient.sessionUrl(b.wsBase, s, 0));
    early.send({ type: "ping", id: "p1" });
    early.send("not json");
    early.send({ type: "ping", id: "p2" });
    await early.waitUntil((ms) => ms.length >= 4, "welcome and three answers");
    const seen = early.messages.map((m) => `${m.type}:${"id" in m ? m.id : ""}:${"code" in m ? m.code : ""}`);
    expect(seen[0]).toBe("session::");
    expect(seen.slice(1).sort()).toEqual(["error::invalid_json", "pong:p1:", "pong:p2:"]);
    early.close();
  });

  it("resumes on a different node after a drop at every k-th event: exact text, no duplicates", async () => {
    const [a, b, c] = nodes as [NodeProc, NodeProc, NodeProc];
    const s = await create(a);
    const ref = await TestClient.connect(TestClient.sessionUrl(a.wsBase, s, 0));
    ref.send({ type: "input", text: "2 * 21" });
    await ref.waitForTurnEnd();
    const reference = logged(ref.messages);
    ref.close();
    const others = [b, c];
    for (let k = 1; k < reference.length; k++) {
      const first = await TestClient.connect(TestClient.sessionUrl(a.wsBase, s, 0));
      await first.waitUntil((ms) => logged(ms).length >= k, `${k} events`);
      const seen: Logged[] = logged(first.messages).slice(0, k);
      first.ws.terminate();
      const other = others[k % 2] as NodeProc;
      const second = await TestClient.connect(TestClient.sessionUrl(other.wsBase, s, (seen.at(-1) as Logged).seq));
      await second.waitUntil((ms) => logged(ms).length === reference.length - k, `rest after ${k}`);
      const all = [...seen, ...logged(second.messages)];
      expect(all, `drop after ${k} on ${other.name}`).toEqual(reference);
      second.close();
    }
  });

  it("kill -9 of the owner mid-turn: the turn ends owner_lost within the lease TTL plus a second, history intact, the next input runs", async () => {
    const redisPrefix = `k${++prefixCount}:`;
    const owner = await startNode("K1", nodeEnv(redis, redisPrefix, { AGENTWIRE_DEMO_TOKENS_PER_SEC: 20, AGENTWIRE_DEMO_REPLY_WORDS: 200 }));
    const survivor = await startNode("K2", nodeEnv(redis, redisPrefix));
    await eventually("survivor ready", async () => (await fetch(`${survivor.base}/readyz`)).status === 200);
    const s = await create(owner);
    const client = await TestClient.connect(TestClient.sessionUrl(survivor.wsBase, s, 0));
    client.send({ type: "input", text: "tell me something long" });
    await client.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 3, "3 tokens");
    const killedAt = Date.now();
    await owner.kill();
    const end = await client.waitForTurnEnd();
    const took = Date.now() - killedAt;
    expect(end).toMatchObject({ turn: "t1", status: "failed", reason: "owner_lost" });
    expect(took).toBeLessThan(LEASE_MS + 1000);
    const events = logged(client.messages);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(events.at(-3)).toMatchObject({ type: "error", code: "owner_lost" });
    const snapshot = (await (await fetch(`${survivor.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } })).json()) as { history: { role: string; text?: string }[] };
    expect(snapshot.history[0]).toEqual({ role: "user", text: "tell me something long" });
    expect(snapshot.history[1]?.role).toBe("assistant");
    expect(snapshot.history[1]?.text).toBe(turnText(client.messages, "t1"));
    client.send({ type: "input", text: "3 + 4" });
    const next = await client.waitForTurnEnd("t2");
    expect(next.status).toBe("completed");
    client.close();
    await survivor.kill();
  });
});
