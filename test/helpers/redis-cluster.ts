// A Redis Cluster of real redis-server children for multi-node tests: N masters, no replicas.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Cluster } from "ioredis";
import {
  freePorts,
  isPortInUse,
  pollUntil,
  probe,
  quitAll,
  REDIS_HOST,
  RedisHarnessError,
  type RedisProc,
  startRedis,
} from "./redis.js";

const run = promisify(execFile);
const PORT_ATTEMPTS = 5;
const CREATE_TIMEOUT_MS = 10_000;
const CLUSTER_OK_TIMEOUT_MS = 5_000;

export interface StartRedisClusterOptions {
  /** Number of masters; redis-cli refuses to create a cluster with fewer than 3. @default 3 */
  masters?: number;
}

export interface RedisClusterProc {
  readonly nodes: readonly { host: string; port: number }[];
  readonly urls: readonly string[];
  /** Quits cluster clients and stops every node. Idempotent. */
  stop(): Promise<void>;
  /** A new ioredis Cluster client for assertions, quit by `stop()`. */
  client(): Cluster;
}

/** One cluster-enabled node; the bus port is chosen explicitly since port + 10000 may not exist or be free. */
async function startClusterNode(): Promise<RedisProc> {
  for (let attempt = 1; ; attempt++) {
    const [port, busPort] = (await freePorts(2)) as [number, number];
    const args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"];
    try {
      return await startRedis({ port, args: [...args, "--cluster-port", String(busPort)] });
    } catch (err) {
      if (attempt >= PORT_ATTEMPTS || !isPortInUse(err)) throw err;
    }
  }
}

async function createCluster(ports: readonly number[]): Promise<void> {
  const addrs = ports.map((port) => `${REDIS_HOST}:${port}`);
  try {
    await run("redis-cli", ["--cluster", "create", ...addrs, "--cluster-replicas", "0", "--cluster-yes"], {
      timeout: CREATE_TIMEOUT_MS,
    });
  } catch (err) {
    const { stdout = "", stderr = "", message } = err as { stdout?: string; stderr?: string; message: string };
    throw new RedisHarnessError("REDIS_CLUSTER_CREATE", `redis-cli --cluster create failed: ${message}\n${stdout}${stderr}`);
  }
}

async function clusterOk(port: number): Promise<boolean> {
  const info = await probe(port, "CLUSTER", "INFO");
  return typeof info === "string" && info.includes("cluster_state:ok");
}

class RedisClusterHandle implements RedisClusterProc {
  readonly nodes: readonly { host: string; port: number }[];
  readonly urls: readonly string[];
  private readonly clients = new Set<Cluster>();

  constructor(private readonly servers: readonly RedisProc[]) {
    this.nodes = servers.map((s) => ({ host: REDIS_HOST, port: s.port }));
    this.urls = servers.map((s) => s.url);
  }

  // redis-cli returning is not enough: a master reports ok only once gossip settles and its 2 s post-boot delay ends.
  waitUntilOk(): Promise<void> {
    return pollUntil(
      "cluster_state:ok on every node",
      async () => (await Promise.all(this.nodes.map((n) => clusterOk(n.port)))).every(Boolean),
      CLUSTER_OK_TIMEOUT_MS,
    );
  }

  async stop(): Promise<void> {
    await quitAll(this.clients);
    await Promise.all(this.servers.map((s) => s.stop()));
  }

  client(): Cluster {
    const client = new Cluster(this.nodes.map((n) => ({ ...n })));
    // Commands still reject with their own errors; the event would only repeat them while a node is down.
    client.on("error", () => {});
    this.clients.add(client);
    client.once("end", () => this.clients.delete(client));
    return client;
  }
}

export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisClusterProc> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 3) throw new RangeError(`masters must be an integer >= 3, got ${masters}`);
  const started = await Promise.allSettled(Array.from({ length: masters }, () => startClusterNode()));
  const servers = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const cluster = new RedisClusterHandle(servers);
  try {
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    await createCluster(servers.map((s) => s.port));
    await cluster.waitUntilOk();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
