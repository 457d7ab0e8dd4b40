import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { TestClient } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();

/**
 * Two nodes; a session created on the first (which will leave), a client on each, and a turn
 * started from the second that has streamed a few tokens.
 */
async function turnSeenFromBothNodes(names: [string, string], redisUrl: string, extra: Record<string, string | number>, input: string) {
  const env = { REDIS_URL: redisUrl, AGENTWIRE_REDIS_PREFIX: `${names[0]}:`, AGENTWIRE_LEASE_TTL_MS: LONG_LEASE_MS, ...extra };
  const [leaving, staying] = await Promise.all([startNode(names[0], env), startNode(names[1], env)]);
  await eventually("both ready", async () => (await fetch(`${leaving.base}/readyz`)).ok && (await fetch(`${staying.base}/readyz`)).ok);
  const s = (await (await fetch(`${leaving.base}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
  const onLeaving = await TestClient.connect(TestClient.sessionUrl(leaving.wsBase, s, 0));
  const onStaying = await TestClient.connect(TestClient.sessionUrl(staying.wsBase, s, 0));
  onStaying.send({ type: "input", text: input });
  await onStaying.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 2, "2 tokens");
  return { leaving, staying, onLeaving, onStaying };
}
const LONG_LEASE_MS = 30_000;

describe.runIf(run)("a node that shuts down gracefully", () => {
  let redis: RedisProc;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());

  it("with no grace period, hands its sessions over at once instead of after the lease", async () => {
    const extra = { AGENTWIRE_DEMO_TOKENS_PER_SEC: 20, AGENTWIRE_DEMO_REPLY_WORDS: 500, AGENTWIRE_SHUTDOWN_GRACE_MS: 0 };
    const { leaving, staying, onLeaving, onStaying } = await turnSeenFromBothNodes(["G1", "G2"], redis.url, extra, "a long story");
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

  it("with a grace period, lets the running turn finish, refuses new input meanwhile, then hands over", async () => {
    const extra = {
      AGENTWIRE_DEMO_TOKENS_PER_SEC: 40,
      AGENTWIRE_DEMO_REPLY_WORDS: 40,
      AGENTWIRE_SHUTDOWN_GRACE_MS: 20_000,
      AGENTWIRE_DRAIN_RECONNECT_MS: 300,
      // The leaving node says when it starts draining.
      LOG_LEVEL: "info",
    };
    const { leaving, staying, onLeaving, onStaying } = await turnSeenFromBothNodes(["H1", "H2"], redis.url, extra, "1 + 2");
    const exit = leaving.stop();
    await eventually("the leaving node to start draining", async () => leaving.output().includes("letting running turns finish"));
    // Forwarded to the owner, which is shutting down: refused, retryable, nothing buffered.
    onStaying.send({ type: "input", id: "early", text: "and then?" });
    const refused = await onStaying.next("error", (m) => m.id === "early");
    expect(refused).toMatchObject({ code: "server_draining", retryable: true, retryAfterMs: 300 });
    // The running turn completes on the leaving node, seen the same on both nodes.
    const end = await onStaying.waitForTurnEnd("t1");
    expect(end).toMatchObject({ status: "completed", reason: "stop" });
    expect(await onLeaving.waitForTurnEnd("t1")).toEqual(end);
    // Only then are the leaving node's clients told to go elsewhere.
    expect(await onLeaving.waitClosed()).toBe(4001);
    const drainAt = onLeaving.messages.findIndex((m) => m.type === "drain");
    expect(drainAt).toBeGreaterThan(onLeaving.messages.findIndex((m) => m.type === "turn_end"));
    expect(await exit).toBe(0);
    // The surviving node owns the session now; the input refused before runs there.
    onStaying.send({ type: "input", text: "and then?" });
    const second = await onStaying.waitForTurnEnd("t2");
    expect(second.status).toBe("completed");
    onStaying.close();
    await (staying as NodeProc).kill();
  });
});
