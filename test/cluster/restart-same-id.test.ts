// An owner killed and restarted at once under the same AGENTWIRE_NODE_ID: its heartbeat is alive again, but the
// new process knows nothing of the old one's sessions. A follower notices the new incarnation, asks, and takes the
// session over: the running turn ends owner_lost (exactly once) and the session goes on.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { TestClient } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();
const LEASE_MS = 1000;

describe.runIf(run)("an owner restarted with the same node id", () => {
  let redis: RedisProc;
  let a: NodeProc;
  let b: NodeProc;
  const env = () => ({ REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "same:", AGENTWIRE_LEASE_TTL_MS: LEASE_MS, AGENTWIRE_DEMO_TOKENS_PER_SEC: 50, AGENTWIRE_DEMO_REPLY_WORDS: 2000 });
  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([startNode("RA", env()), startNode("RB", env())]);
    await Promise.all([a, b].map((n) => eventually(`${n.name} ready`, async () => (await fetch(`${n.base}/readyz`)).status === 200)));
  }, 30_000);
  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await redis?.stop();
  });

  it("ends the orphaned turn owner_lost within a few lease times, once, and the next input runs", async () => {
    const res = await fetch(`${a.base}/v1/sessions`, { method: "POST" });
    const s = (await res.json()) as { sessionId: string; token: string };
    // The client follows from B; the session is A's.
    const client = await TestClient.connect(TestClient.sessionUrl(b.wsBase, s));
    await client.next("session");
    client.send({ type: "input", id: "long", text: "a long answer please" });
    await client.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 5, "5 tokens");

    await a.kill();
    a = await startNode("RA", env());
    const restartedAt = performance.now();
    const end = await client.next("turn_end");
    const tookMs = performance.now() - restartedAt;
    expect([end.turn, end.status, end.reason]).toEqual(["t1", "failed", "owner_lost"]);
    // Old code: no turn_end at all while the restarted node's heartbeat is alive (40 s and more).
    expect(tookMs).toBeLessThan(4 * LEASE_MS + 3000);
    // Exactly one turn_end for t1, and the session takes the next input and streams it (on B, its new owner).
    client.send({ type: "input", id: "next", text: "what is 2 + 2" });
    expect(await client.next("ack", (m) => m.id === "next")).toMatchObject({ id: "next", turn: "t2" });
    await client.next("turn_start", (m) => m.turn === "t2");
    await client.waitUntil((ms) => ms.some((m) => m.type === "token" && m.turn === "t2"), "t2 streams");
    expect(client.messages.filter((m) => m.type === "turn_end" && m.turn === "t1").length).toBe(1);
    client.close();
  }, 30_000);
});
