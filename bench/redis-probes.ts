// The measurements behind the Redis section: cluster nodes that wait for Redis, per-token hop latency, and windows of throughput.
import { get } from "node:http";
import { type ChildServer, cpuMs } from "./proc.js";
import type { RedisChild } from "./redis-child.js";
import { HOST, startAgentwire } from "./servers/index.js";
import { createSessions } from "./servers/agentwire-sessions.js";
import { type Arrival, SessionClient } from "./session-client.js";
import { type Spread, nowMs, spread } from "./stats.js";
import { type LoadResult, type WindowEdge, forkTokenLoad } from "./token-load.js";

const INPUT = { type: "input", text: "1 + 2" };

export type Where = "A" | "B";

/** One column of the throughput table: where the client sits and how the owner batches. */
export interface FlowCase {
  label: string;
  where: Where;
  batchMs: number;
}

export interface FlowSizes {
  sessions: number;
  warmupMs: number;
  measureMs: number;
}

/** `GET /readyz` answers 200: the node's Redis links are up (it listens before they are). */
function isReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get({ host: HOST, port, path: "/readyz" }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
  });
}

/** Starts one agentwire node of the bench cluster and waits until it can reach Redis. */
export async function startNode(redis: RedisChild, prefix: string, nodeId: string, tokensPerTurn: number, env: Record<string, string> = {}): Promise<ChildServer> {
  const node = await startAgentwire({ tokensPerTurn, env: { REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: prefix, AGENTWIRE_NODE_ID: nodeId, ...env } });
  const deadline = Date.now() + 10_000;
  while (!(await isReady(node.port))) {
    if (Date.now() > deadline) {
      await node.stop();
      throw new Error(`node ${nodeId} did not become ready`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return node;
}

export interface Hop {
  batchMs: number;
  added: Spread;
  /** Seqs seen on A that never reached B. */
  missing: number;
  tokensPerSec: number;
}

/** Token seq -> arrival time on one client; a merged frame stands for every seq it carries. */
function recordArrivals(client: SessionClient): Map<number, number> {
  const arrivals = new Map<number, number>();
  client.onFrame = ({ frame, at }: Arrival) => {
    if (frame.type !== "token" || frame.seq === undefined) return;
    for (let seq = frame.from ?? frame.seq; seq <= frame.seq; seq++) arrivals.set(seq, at);
  };
  return arrivals;
}

/** One session owned by `owner`, a client on it and one on `replica`; every token's arrival on B minus on A. */
export async function measureHop(owner: ChildServer, replica: ChildServer, batchMs: number, turns: number): Promise<Hop> {
  const [session] = await createSessions(HOST, owner.port, 1);
  if (!session) throw new Error("no session created");
  const onA = await SessionClient.open(HOST, owner.port, session.sessionId, session.token);
  const onB = await SessionClient.open(HOST, replica.port, session.sessionId, session.token);
  const a = recordArrivals(onA);
  const b = recordArrivals(onB);
  try {
    for (let turn = 0; turn < turns; turn++) {
      const isEnd = (f: { type: string }) => f.type === "turn_end";
      const ended = Promise.all([onA.next(isEnd, 60_000), onB.next(isEnd, 60_000)]);
      onA.send(INPUT);
      await ended;
    }
  } finally {
    onA.close();
    onB.close();
  }
  const added: number[] = [];
  for (const [seq, at] of a) {
    const there = b.get(seq);
    if (there !== undefined) added.push(there - at);
  }
  const times = [...a.values()];
  const spanMs = Math.max(...times) - Math.min(...times);
  return { batchMs, added: spread(added), missing: a.size - added.length, tokensPerSec: (a.size * 1000) / spanMs };
}

interface Reading {
  at: number;
  owner: number;
  replica: number;
  redis: number;
  calls: Map<string, number>;
}

export interface Flow {
  flowCase: FlowCase;
  load: LoadResult;
  windowMs: number;
  ownerCpuMs: number;
  replicaCpuMs: number;
  redisCpuMs: number;
  /** Events per append script run (XADD calls / EVALSHA calls) over the window. */
  eventsPerAppend: number | null;
}

export async function measureFlow(flowCase: FlowCase, owner: ChildServer, replica: ChildServer, redis: RedisChild, sizes: FlowSizes): Promise<Flow> {
  const sessions = await createSessions(HOST, owner.port, sizes.sessions);
  const target = flowCase.where === "A" ? owner : replica;
  const read = async (): Promise<Reading> => {
    const cpu = { at: nowMs(), owner: cpuMs(owner.pid), replica: cpuMs(replica.pid), redis: cpuMs(redis.pid) };
    return { ...cpu, calls: await redis.commandCalls() };
  };
  const edges = new Map<WindowEdge, Promise<Reading>>();
  const load = await forkTokenLoad(
    {
      host: HOST,
      port: target.port,
      serverPid: target.pid,
      links: sessions.map((s) => `/v1/sessions/${s.sessionId}/ws?token=${s.token}`),
      startMessage: JSON.stringify(INPUT),
      warmupMs: sizes.warmupMs,
      measureMs: sizes.measureMs,
    },
    (edge) => edges.set(edge, read()),
  );
  const start = await edges.get("start");
  const end = await edges.get("end");
  if (!start || !end) throw new Error("the load client reported no window");
  const calls = (name: string) => (end.calls.get(name) ?? 0) - (start.calls.get(name) ?? 0);
  const appends = calls("evalsha");
  return {
    flowCase,
    load,
    windowMs: end.at - start.at,
    ownerCpuMs: end.owner - start.owner,
    replicaCpuMs: end.replica - start.replica,
    redisCpuMs: end.redis - start.redis,
    eventsPerAppend: appends > 0 ? calls("xadd") / appends : null,
  };
}
