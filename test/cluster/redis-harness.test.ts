// The Redis test harness itself: private servers that restart, die and form a cluster on demand.
import { describe, expect, it, onTestFinished } from "vitest";
import { probe, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { startRedisCluster } from "../helpers/redis-cluster.js";

const runId = (info: string) => /run_id:(\w+)/.exec(info)?.[1];

describe.runIf(requireRedisOrSkip())("redis test harness", () => {
  it("serves a private server that restarts on the same port without data and dies on kill", async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    expect(redis.port).not.toBe(6379);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);

    const client = redis.client();
    await client.set("harness:k", "v1");
    expect(await client.get("harness:k")).toBe("v1");
    const firstRun = runId(await client.info("server"));
    const firstPid = redis.pid;

    await redis.restart();
    expect(redis.pid).not.toBe(firstPid);
    // The same client reconnects to the new process; nothing survived because nothing is persisted.
    expect(await client.get("harness:k")).toBeNull();
    expect(runId(await client.info("server"))).not.toBe(firstRun);

    const pid = redis.pid!;
    await redis.kill();
    expect(redis.pid).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
    expect(await probe(redis.port, "PING")).toBeNull();

    await redis.restart();
    expect(await probe(redis.port, "PING")).toBe("PONG");
  });

  it("forms a three-master cluster that spreads hash tags across masters", async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    onTestFinished(() => cluster.stop());
    expect(cluster.nodes).toHaveLength(3);
    expect(new Set(cluster.nodes.map((n) => n.port)).size).toBe(3);

    const client = cluster.client();
    const tags = ["a", "b", "c", "d", "e", "f"];
    for (const tag of tags) await client.set(`{${tag}}:harness`, tag);
    for (const tag of tags) expect(await client.get(`{${tag}}:harness`)).toBe(tag);

    const sizes: number[] = [];
    for (const { port } of cluster.nodes) {
      const info = String(await probe(port, "CLUSTER", "INFO"));
      expect(info).toContain("cluster_state:ok");
      expect(info).toContain("cluster_known_nodes:3");
      expect(info).toContain("cluster_size:3");
      sizes.push(Number(await probe(port, "DBSIZE")));
    }
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(tags.length);
    expect(sizes.filter((n) => n > 0).length).toBeGreaterThan(1);
  });
});
