// A Redis that stops answering without closing its sockets (SIGSTOP: paused, swapped out, a dead route): the node is
// not ready on /readyz within about AGENTWIRE_REDIS_HEALTH_TIMEOUT_MS, and ready again once Redis answers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";

const run = requireRedisOrSkip();
const HEALTH_MS = 500;

const readyz = async (node: NodeProc) => (await fetch(`${node.base}/readyz`)).status;

describe.runIf(run)("a paused Redis", () => {
  let redis: RedisProc;
  let node: NodeProc;
  beforeAll(async () => {
    redis = await startRedis();
    node = await startNode("PA", { REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "pause:", AGENTWIRE_REDIS_HEALTH_TIMEOUT_MS: HEALTH_MS });
    await eventually("ready", async () => (await readyz(node)) === 200);
  }, 30_000);
  afterAll(async () => {
    if (redis?.pid) process.kill(redis.pid, "SIGCONT");
    await node?.kill();
    await redis?.stop();
  });

  it("/readyz answers 503 within the health timeout plus a ping interval, and 200 again after SIGCONT", async () => {
    const pid = redis.pid as number;
    process.kill(pid, "SIGSTOP");
    const stoppedAt = performance.now();
    await eventually("not ready", async () => (await readyz(node)) === 503, 5000);
    const notReadyAfter = performance.now() - stoppedAt;
    // The link is still open: only the unanswered pings can tell. Allow a scheduling margin on a busy host.
    expect(notReadyAfter).toBeLessThan(HEALTH_MS + HEALTH_MS / 4 + 750);
    expect(await readyz(node)).toBe(503);
    process.kill(pid, "SIGCONT");
    await eventually("ready again", async () => (await readyz(node)) === 200, 5000);
  });
});
