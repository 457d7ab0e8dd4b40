import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { TestClient, logged } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();

const readyz = async (node: NodeProc) => (await fetch(`${node.base}/readyz`)).status;

describe.runIf(run)("a Redis restart in the middle of a turn", () => {
  let redis: RedisProc;
  let a: NodeProc;
  let b: NodeProc;
  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "out:", AGENTWIRE_LEASE_TTL_MS: 1000, AGENTWIRE_DEMO_TOKENS_PER_SEC: 100, AGENTWIRE_DEMO_REPLY_WORDS: 600 };
    [a, b] = await Promise.all([startNode("OA", env), startNode("OB", env)]);
    await Promise.all([a, b].map((n) => eventually(`${n.name} ready`, async () => (await readyz(n)) === 200)));
  }, 30_000);
  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await redis?.stop();
  });

  it("local streaming goes on, /readyz goes false then true, cross-node routing comes back, nothing crashes", async () => {
    const res = await fetch(`${a.base}/v1/sessions`, { method: "POST" });
    const s = (await res.json()) as { sessionId: string; token: string };
    const local = await TestClient.connect(TestClient.sessionUrl(a.wsBase, s, 0));
    local.send({ type: "input", text: "a long answer please" });
    await local.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 5, "5 tokens");

    await redis.kill();
    await eventually("A not ready", async () => (await readyz(a)) === 503);
    await eventually("B not ready", async () => (await readyz(b)) === 503);
    // Tokens keep flowing to the client on the owner node while Redis is gone.
    const during = local.messages.filter((m) => m.type === "token").length;
    await local.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= during + 20, "20 more tokens during the outage");
    // A message for the session through the other node cannot reach the owner: a typed, retryable refusal.
    const refused = await fetch(`${b.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "ping" }),
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("owner_unavailable");

    // A session created during the outage works on its node at once...
    const during2 = (await (await fetch(`${a.base}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
    const early = await TestClient.connect(TestClient.sessionUrl(a.wsBase, during2, 0));
    early.send({ type: "input", text: "1 + 2" });
    await early.next("token");
    early.send({ type: "cancel" });
    await early.waitForTurnEnd();

    await redis.restart();
    const restartedAt = Date.now();
    const refusals: number[] = [];
    const left = () => Math.max(1, restartedAt + 5000 - Date.now());
    // Within 5 s of the restart: both ready, and a message through B reaches the owner on A.
    await eventually("A ready again", async () => (await readyz(a)) === 200, left());
    await eventually("B ready again", async () => (await readyz(b)) === 200, left());
    await eventually(
      "a ping through B answered by the owner",
      async () => {
        const r = await fetch(`${b.base}/v1/sessions/${s.sessionId}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
          body: JSON.stringify({ type: "ping" }),
        });
        refusals.push(r.status);
        return r.status === 200 && ((await r.json()) as { type: string }).type === "pong";
      },
      left(),
    );
    // ...and the other nodes find it, with its whole log, once its owner re-registers it (within the 5 s).
    let lateView: TestClient | null = null;
    await eventually(
      "the session made during the outage to be found through B",
      async () => {
        // B accepts the link, looks the session up, then welcomes or closes it with a code.
        const link = await TestClient.connect(TestClient.sessionUrl(b.wsBase, during2, 0));
        await link.waitUntil((ms) => ms.length > 0 || link.closeCode !== null, "a welcome or a close");
        if (link.closeCode !== null) {
          refusals.push(link.closeCode);
          return false;
        }
        lateView = link;
        return true;
      },
      left(),
    );
    if (!lateView) throw new Error("unreachable");
    // Until the owner has stored its sessions again, other nodes say "try again", never "not found":
    // 503 to the POSTs, close 4004 to the WebSocket.
    expect(refusals.filter((code) => code !== 200 && code !== 503 && code !== 4004)).toEqual([]);
    const view: TestClient = lateView;
    await view.waitForTurnEnd();
    expect(logged(view.messages)).toEqual(logged(early.messages));
    view.close();
    early.close();
    const viaB = await TestClient.connect(TestClient.sessionUrl(b.wsBase, s, 0));
    const cancel = await fetch(`${b.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "cancel" }),
    });
    expect(cancel.status).toBe(202);
    const [endLocal, endRemote] = await Promise.all([local.waitForTurnEnd(), viaB.waitForTurnEnd()]);
    expect(endLocal).toMatchObject({ status: "cancelled" });
    expect(endRemote).toEqual(endLocal);
    // The node on B replayed the log that A wrote back after the restart: the same events, gap-free.
    expect(logged(viaB.messages)).toEqual(logged(local.messages));
    const seqs = logged(local.messages).map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
    expect(a.output() + b.output()).not.toMatch(/unhandled|uncaught/i);
    local.close();
    viaB.close();
  });
});
