// Exactly-once input across a takeover: the owner is killed (-9) after taking an input; the resend to the node that
// takes the session over is acked with the turn the dead owner started, and no second turn runs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { TestClient, logged } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();
const LEASE_MS = 1000;

describe.runIf(run)("exactly-once input on two nodes over a real Redis", () => {
  let redis: RedisProc;
  let owner: NodeProc;
  let survivor: NodeProc;
  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "x1:", AGENTWIRE_LEASE_TTL_MS: LEASE_MS, AGENTWIRE_DEMO_TOKENS_PER_SEC: 20, AGENTWIRE_DEMO_REPLY_WORDS: 200 };
    [owner, survivor] = await Promise.all([startNode("X1", env), startNode("X2", env)]);
    await Promise.all([owner, survivor].map((n) => eventually(`${n.name} ready`, async () => (await fetch(`${n.base}/readyz`)).status === 200)));
  }, 30_000);
  afterAll(async () => {
    await Promise.all([owner?.kill(), survivor?.kill()]);
    await redis?.stop();
  });

  it("a configure and an input taken by the killed owner are acked again by the new owner, and applied once", async () => {
    const res = await fetch(`${owner.base}/v1/sessions`, { method: "POST" });
    const s = (await res.json()) as { sessionId: string; token: string };
    const first = await TestClient.connect(TestClient.sessionUrl(owner.wsBase, s));
    first.send({ type: "configure", id: "c1", system: "short answers" });
    first.send({ type: "input", id: "m1", text: "tell me something long" });
    await first.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 2, "2 tokens");
    await owner.kill();

    // A client on the other node sees the orphaned turn end once that node holds the session.
    const second = await TestClient.connect(TestClient.sessionUrl(survivor.wsBase, s, 0));
    const end = await second.waitForTurnEnd("t1");
    expect(end).toMatchObject({ status: "failed", reason: "owner_lost" });
    second.send({ type: "configure", id: "c1", system: "short answers" });
    second.send({ type: "input", id: "m1", text: "tell me something long" });
    await second.waitUntil((ms) => ms.filter((m) => m.type === "ack").length === 2, "2 acks");
    expect(second.messages.filter((m) => m.type === "ack")).toEqual([{ type: "ack", id: "c1" }, { type: "ack", id: "m1", turn: "t1" }]);

    // A new input still runs: it is t2, and nothing ran between.
    second.send({ type: "input", id: "m2", text: "2 + 2" });
    await second.next("turn_start", (m) => m.turn === "t2");
    const starts = logged(second.messages).filter((e) => e.type === "turn_start");
    expect(starts.map((e) => [e.turn, e.id])).toEqual([["t1", "m1"], ["t2", "m2"]]);
    first.close();
    second.close();
  });
});
