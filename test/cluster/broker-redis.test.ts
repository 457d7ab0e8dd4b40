import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisBroker } from "../../src/broker/broker-redis.js";
import { silentLogger } from "../../src/logger.js";
import { brokerContract } from "../helpers/broker-contract.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { type RedisClusterProc, startRedisCluster } from "../helpers/redis-cluster.js";

const run = requireRedisOrSkip();

async function ready(...brokers: RedisBroker[]): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!brokers.every((b) => b.isReady())) {
    if (Date.now() > deadline) throw new Error("brokers never became ready");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.runIf(run)("RedisBroker on a single redis-server", () => {
  let redis: RedisProc;
  let n = 0;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  brokerContract("redis", async () => {
    const prefix = `t${++n}:`;
    const a = new RedisBroker({ url: redis.url, prefix, nodeId: `A${n}`, logger: silentLogger, probeIntervalMs: 200 });
    const b = new RedisBroker({ url: redis.url, prefix, nodeId: `B${n}`, logger: silentLogger, probeIntervalMs: 200 });
    await ready(a, b);
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });

  it("fails a request to a node nobody hears at once, instead of after its timeout", { timeout: 5000 }, async () => {
    const a = new RedisBroker({ url: redis.url, prefix: "gone:", nodeId: "A-gone", logger: silentLogger, probeIntervalMs: 200 });
    await ready(a);
    // With an hour to wait, only the publish's receiver count can end this within the test's 5 s.
    const outcome = await a.request("nobody", { kind: "submit", sessionId: "s_x", body: null }, 3_600_000).then(
      () => "answered",
      (err: Error) => err.name,
    );
    expect(outcome).toBe("BrokerTimeout");
    await a.close();
  });
});

describe.runIf(run)("RedisBroker on a three-master Redis Cluster", () => {
  let cluster: RedisClusterProc;
  let n = 0;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 30_000);
  afterAll(() => cluster.stop());

  brokerContract("redis cluster", async () => {
    const prefix = `c${++n}:`;
    const nodes = cluster.nodes.map((x) => `${x.host}:${x.port}`);
    const a = new RedisBroker({ clusterNodes: nodes, prefix, nodeId: `A${n}`, logger: silentLogger, probeIntervalMs: 200 });
    const b = new RedisBroker({ clusterNodes: nodes, prefix, nodeId: `B${n}`, logger: silentLogger, probeIntervalMs: 200 });
    await ready(a, b);
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });
});

describe.runIf(run)("session events on a Redis Cluster", () => {
  it("travel over sharded pub/sub: subscribers sit on the shard that owns the session", async () => {
    const cluster = await startRedisCluster();
    try {
      const nodes = cluster.nodes.map((x) => `${x.host}:${x.port}`);
      const a = new RedisBroker({ clusterNodes: nodes, prefix: "sh:", nodeId: "SA", logger: silentLogger, probeIntervalMs: 200 });
      const b = new RedisBroker({ clusterNodes: nodes, prefix: "sh:", nodeId: "SB", logger: silentLogger, probeIntervalMs: 200 });
      await ready(a, b);
      await a.acquireLease("s1", 10_000);
      const got: number[] = [];
      let wake: () => void = () => {};
      const done = new Promise<void>((r) => (wake = r));
      const unsubscribe = await b.subscribe("s1", {
        events: (events) => {
          got.push(...events.map((e) => e.seq));
          if (got.length === 2) wake();
        },
        deleted: () => {},
      });
      const counts = await Promise.all(
        cluster.nodes.map(async (n) => {
          const c = new Redis(n.port, n.host);
          const sharded = (await c.call("PUBSUB", "SHARDNUMSUB", "sh:{s1}:events")) as [string, number];
          const plain = (await c.call("PUBSUB", "NUMSUB", "sh:{s1}:events")) as [string, number];
          c.disconnect();
          return [Number(sharded[1]), Number(plain[1])];
        }),
      );
      expect(counts.reduce((n, c) => n + (c[0] as number), 0)).toBe(1);
      expect(counts.reduce((n, c) => n + (c[1] as number), 0)).toBe(0);
      await a.append("s1", [{ seq: 1, frame: "{}" }, { seq: 2, frame: "{}" }], { maxEvents: 10, ttlMs: 10_000 });
      await done;
      expect(got).toEqual([1, 2]);
      await unsubscribe();
      await Promise.all([a.close(), b.close()]);
    } finally {
      await cluster.stop();
    }
  }, 30_000);
});
