// A draining node tells the client to reconnect after `reconnectAfterMs`: the client waits that long, reconnects
// (here the proxy now leads to another node of the cluster) and resumes with every seq once.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, memoryStore } from "@agentwire/client";
import type { LoggedEvent, ServerMessage } from "@agentwire/protocol";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TcpProxy } from "../../bench/tcp-proxy.js";

const run = requireRedisOrSkip();
const RECONNECT_AFTER_MS = 400;

describe.runIf(run)("the client and a draining node", () => {
  let redis: RedisProc;
  let a: TestServer;
  let b: TestServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "cd:", AGENTWIRE_DRAIN_RECONNECT_MS: RECONNECT_AFTER_MS, AGENTWIRE_DEMO_REPLY_WORDS: 4 };
    [a, b] = await Promise.all([startTestServer(env), startTestServer(env)]);
    proxy = await TcpProxy.start(a.port);
  });
  afterAll(async () => {
    await proxy?.close();
    await b?.close();
    await redis?.stop();
  });

  it("waits reconnectAfterMs (with jitter), then resumes on the next node", async () => {
    const client = new AgentwireClient({ url: proxy.base, WebSocket, store: memoryStore(), reconnect: { baseMs: 5, maxMs: 20 } });
    const logged: LoggedEvent[] = [];
    let drainedAt = 0;
    client.on("message", (m: ServerMessage) => {
      if ("seq" in m && typeof m.seq === "number") logged.push(m as LoggedEvent);
      if (m.type === "drain") drainedAt = performance.now();
    });
    await client.connect();
    expect((await client.send("what is 2 * 21").done).status).toBe("completed");

    proxy.retarget(b.port);
    const reopened = new Promise<number>((resolve) => client.on("state", (s) => s.status === "open" && resolve(performance.now())));
    await a.close({ graceMs: 0 });
    const at = await reopened;
    expect(drainedAt).toBeGreaterThan(0);
    expect(at - drainedAt).toBeGreaterThanOrEqual(RECONNECT_AFTER_MS * 0.8 - 5);

    expect((await client.send("what is 3 * 14").done).status).toBe("completed");
    expect(logged.map((e) => e.seq)).toEqual(Array.from({ length: logged.length }, (_, i) => i + 1));
    expect(logged.filter((e) => e.type === "turn_end").map((e) => e.turn)).toEqual(["t1", "t2"]);
    client.close();
  });
});
