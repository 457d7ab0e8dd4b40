import { afterAll, beforeAll, describe } from "vitest";
import { RedisBroker } from "../../src/broker/broker-redis.js";
import { silentLogger } from "../../src/engine/logger.js";
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
