import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { TestClient } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();
const LONG_LEASE_MS = 30_000;

describe.runIf(run)("a node that shuts down gracefully", () => {
  let redis: RedisProc;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());

  it("hands its sessions over at once instead of after the lease", async () => {
    const env = { REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "g:", AGENTWIRE_LEASE_TTL_MS: LONG_LEASE_MS, AGENTWIRE_DEMO_TOKENS_PER_SEC: 20, AGENTWIRE_DEMO_REPLY_WORDS: 500 };
    const [leaving, staying] = await Promise.all([startNode("G1", env), startNode("G2", env)]);
    await eventually("both ready", async () => (await fetch(`${leaving.base}/readyz`)).ok && (await fetch(`${staying.base}/readyz`)).ok);
    const s = (await (await fetch(`${leaving.base}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
    const onLeaving = await TestClient.connect(TestClient.sessionUrl(leaving.wsBase, s, 0));
    const onStaying = await TestClient.connect(TestClient.sessionUrl(staying.wsBase, s, 0));
    onStaying.send({ type: "input", text: "a long story" });
    await onStaying.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 2, "2 tokens");
    const stoppedAt = Date.now();
    const exit = leaving.stop();
    // Its own clients are told to go elsewhere, with the reconnect code.
    expect(await onLeaving.waitClosed()).toBe(4001);
    expect(onLeaving.messages.find((m) => m.type === "drain")).toMatchObject({ reason: "server_draining" });
    expect(await exit).toBe(0);
    const end = await onStaying.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: "owner_lost" });
    expect(Date.now() - stoppedAt).toBeLessThan(LONG_LEASE_MS / 3);
    // The surviving node now owns the session: the next input runs there.
    onStaying.send({ type: "input", text: "1 + 1" });
    await onStaying.next("token", (m) => m.turn === "t2");
    onStaying.send({ type: "cancel" });
    expect((await onStaying.waitForTurnEnd("t2")).status).toBe("cancelled");
    onStaying.close();
    await (staying as NodeProc).kill();
  });
});
