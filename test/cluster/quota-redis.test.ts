// Per-identity quotas that hold across nodes: two real nodes (child processes of the CLI) on one real redis-server,
// identities from signed client tokens (`jwt:<sub>`), every limit counted in Redis (src/broker/quota-redis.ts).
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeProc, eventually, startNode } from "../helpers/node-proc.js";
import { type RedisProc, requireRedisOrSkip, startRedis } from "../helpers/redis.js";
import { startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

const run = requireRedisOrSkip();
const SECRET = "quota-redis-test-secret-0123456789abcdef";
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
/** What a refusal of a held limit tells the client to wait (HELD_RETRY_MS in src/engine/quota.ts). */
const HELD_RETRY = { sessions: 5000, turns: 1000 } as const;
/** The registry entry of a node lives 3 refreshes (6 s); the survivor learns at its next refresh (every 2 s). */
const DEAD_NODE_GONE_MS = 6000 + 2000;

interface Created {
  sessionId: string;
  token: string;
}
interface ErrorBody {
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
  limit?: string;
}
interface Answer {
  status: number;
  retryAfter: string | null;
  body: { error?: ErrorBody; turn?: string; sessionId?: string; token?: string };
}

async function mint(sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(SECRET));
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: text ? (JSON.parse(text) as Answer["body"]) : {} };
}

function tryCreate(node: NodeProc, jwt: string): Promise<Answer> {
  return fetch(`${node.base}/v1/sessions`, { method: "POST", headers: { authorization: `Bearer ${jwt}` } }).then(answer);
}

async function create(node: NodeProc, jwt: string): Promise<Created> {
  const res = await tryCreate(node, jwt);
  expect(res.status, `create on ${node.name}: ${JSON.stringify(res.body)}`).toBe(201);
  return { sessionId: res.body.sessionId as string, token: res.body.token as string };
}

async function remove(node: NodeProc, s: Created): Promise<void> {
  const res = await fetch(`${node.base}/v1/sessions/${s.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${s.token}` } });
  expect(res.status, `DELETE through ${node.name}`).toBe(204);
}

function post(node: NodeProc, s: Created, message: unknown): Promise<Answer> {
  return fetch(`${node.base}/v1/sessions/${s.sessionId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
    body: JSON.stringify(message),
  }).then(answer);
}

const input = (text: string) => ({ type: "input", text });

/** Asserts a 429 `quota_exceeded` naming `limit`; returns its retryAfterMs. */
function expectQuota(res: Answer, limit: string, what: string): number {
  expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(429);
  const error = res.body.error as ErrorBody;
  expect(error.code, what).toBe("quota_exceeded");
  expect(error.limit, what).toBe(limit);
  expect(error.retryable, what).toBe(true);
  expect(typeof error.retryAfterMs, what).toBe("number");
  expect(res.retryAfter, what).toBe(String(Math.ceil((error.retryAfterMs as number) / 1000)));
  return error.retryAfterMs as number;
}

/** Waits (at most `marginMs`) so that a fixed window does not roll over in the middle of a test. */
async function awayFromWindowEnd(windowMs: number, marginMs: number): Promise<void> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 50));
}

/** Polls `attempt` until it answers `status`: for state that changes in another process without an event. */
async function until(what: string, attempt: () => Promise<Answer>, status: number, timeoutMs: number): Promise<{ res: Answer; refusals: Answer[] }> {
  const refusals: Answer[] = [];
  let res: Answer | undefined;
  await eventually(
    what,
    async () => {
      res = await attempt();
      if (res.status !== status) refusals.push(res);
      return res.status === status;
    },
    timeoutMs,
    100,
  );
  return { res: res as Answer, refusals };
}

interface Pair {
  a: NodeProc;
  b: NodeProc;
  prefix: string;
}

const QUESTION = "what is 6 * 7";

/** Each test's limits (the operator's defaults, as env), on a pair of nodes of its own. */
const PAIR_ENV = (turnUsage: number) => ({
  sessions: { AGENTWIRE_IDENTITY_MAX_SESSIONS: 3 },
  perMinute: { AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: 2 },
  turns: { AGENTWIRE_IDENTITY_MAX_TURNS: 1, AGENTWIRE_DEMO_TOKENS_PER_SEC: 20, AGENTWIRE_DEMO_REPLY_WORDS: 30 },
  // The budget is checked when a turn is accepted: a turn is taken while less than the limit is spent, so a
  // budget of exactly one turn's usage lets one turn through.
  tokens: { AGENTWIRE_IDENTITY_TOKENS_PER_DAY: turnUsage },
  dead: { AGENTWIRE_IDENTITY_MAX_SESSIONS: 3 },
});

describe.runIf(run)("per-identity quotas across two nodes on one Redis", () => {
  let redis: RedisProc;
  const nodes: NodeProc[] = [];
  let prefixCount = 0;
  let alice: string;
  let bob: string;
  /** Input + output tokens of one demo turn on QUESTION. */
  let turnUsage: number;
  let pairs: Record<keyof ReturnType<typeof PAIR_ENV>, Pair>;

  beforeAll(async () => {
    redis = await startRedis();
    [alice, bob] = await Promise.all([mint("alice"), mint("bob")]);
    turnUsage = await oneTurnUsage(QUESTION);
    // Started together: most of a pair's start is waiting for its nodes to see each other (up to 2 s).
    const started = await Promise.all(Object.entries(PAIR_ENV(turnUsage)).map(async ([name, env]) => [name, await startPair(env)] as const));
    pairs = Object.fromEntries(started) as typeof pairs;
  }, 60_000);
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await redis?.stop();
  });

  /** Nodes A and B on a prefix of their own (a test's counts start at zero), tokens required, with `env` limits. */
  async function startPair(env: Record<string, string | number>): Promise<Pair> {
    const prefix = `qr${++prefixCount}:`;
    const common = {
      REDIS_URL: redis.url,
      AGENTWIRE_REDIS_PREFIX: prefix,
      AGENTWIRE_AUTH: "required",
      AGENTWIRE_JWT_SECRET: SECRET,
      AGENTWIRE_LEASE_TTL_MS: 1000,
      AGENTWIRE_IDENTITY_MAX_SESSIONS: 0,
      AGENTWIRE_IDENTITY_MAX_CONNECTIONS: 0,
      AGENTWIRE_IDENTITY_MAX_TURNS: 0,
      AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: 0,
      AGENTWIRE_IDENTITY_TOKENS_PER_MINUTE: 0,
      AGENTWIRE_IDENTITY_TOKENS_PER_DAY: 0,
      ...env,
    };
    const started = await Promise.allSettled(["A", "B"].map((name) => startNode(name, common)));
    for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const [a, b] = started.map((s) => (s as PromiseFulfilledResult<NodeProc>).value) as [NodeProc, NodeProc];
    await Promise.all([a, b].map((n) => eventually(`${n.name} ready`, async () => (await fetch(`${n.base}/readyz`)).status === 200, 20_000)));
    await awaitMutualSight(a, b);
    return { a, b, prefix };
  }

  /**
   * Each node counts what the other holds from the moment both listen, whichever registered first: a node counts
   * incarnations that started after its last look at the registry too. Probe identities with a signed limit of 1
   * session: one held on `holder`, and the first create on `asker` is refused.
   */
  async function awaitMutualSight(a: NodeProc, b: NodeProc): Promise<void> {
    await Promise.all(
      [[a, b], [b, a]].map(async ([holder, asker]) => {
        const probe = await mint(`probe-${(holder as NodeProc).name}`, { limits: { sessions: 1, sessions_per_minute: 0 } });
        await create(holder as NodeProc, probe);
        const res = await tryCreate(asker as NodeProc, probe);
        expectQuota(res, "sessions", "probe");
      }),
    );
  }

  it("sessions: 2 on A + 1 on B fill alice's 3; the 4th is refused on both nodes, bob is not; a DELETE through either node frees one", async () => {
    const { a, b } = pairs.sessions;
    const a1 = await create(a, alice);
    await create(a, alice);
    const a3 = await create(b, alice);
    expect(expectQuota(await tryCreate(a, alice), "sessions", "alice's 4th on A")).toBe(HELD_RETRY.sessions);
    expect(expectQuota(await tryCreate(b, alice), "sessions", "alice's 4th on B")).toBe(HELD_RETRY.sessions);
    // Refusals hold nothing: still refused, and bob has his own 3 across both nodes.
    expectQuota(await tryCreate(a, alice), "sessions", "alice again on A");
    await create(a, bob);
    await create(b, bob);
    await create(b, bob);
    expectQuota(await tryCreate(a, bob), "sessions", "bob's 4th on A");

    // a1 is owned by A; deleted through B (forwarded to its owner), it frees exactly one place.
    await remove(b, a1);
    await create(a, alice);
    expectQuota(await tryCreate(b, alice), "sessions", "alice full again, on B");
    // a3 is owned by B; deleted through A.
    await remove(a, a3);
    await create(b, alice);
    expectQuota(await tryCreate(a, alice), "sessions", "alice full again, on A");
  });

  it("sessions_per_minute=2: one create on A and one on B use it up; a third is refused on either node until the minute ends", async () => {
    const { a, b } = pairs.perMinute;
    await awayFromWindowEnd(MINUTE_MS, 5000);
    await create(a, alice);
    await create(b, alice);
    for (const node of [a, b]) {
      const before = MINUTE_MS - (Date.now() % MINUTE_MS);
      const retryAfterMs = expectQuota(await tryCreate(node, alice), "sessions_per_minute", `alice's 3rd create, on ${node.name}`);
      const after = MINUTE_MS - (Date.now() % MINUTE_MS);
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(MINUTE_MS);
      // To the end of the current clock minute, as measured around the request.
      expect(retryAfterMs).toBeLessThanOrEqual(before);
      expect(retryAfterMs).toBeGreaterThanOrEqual(after);
    }
    // A refused create counts nothing; bob's minute is his own.
    await create(b, bob);
    await create(a, bob);
    expectQuota(await tryCreate(b, bob), "sessions_per_minute", "bob's 3rd create");
  });

  it("turns=1: a turn running on A refuses alice's input to her session owned by B until it ends, and the other way round", async () => {
    const { a, b } = pairs.turns;
    const onA = await create(a, alice);
    const onB = await create(b, alice);
    const bobOnB = await create(b, bob);
    const wsA = await TestClient.connect(TestClient.sessionUrl(a.wsBase, onA, 0));
    const wsB = await TestClient.connect(TestClient.sessionUrl(b.wsBase, onB, 0));
    try {
      const first = await post(a, onA, input("what is 6 * 7"));
      expect(first.status, JSON.stringify(first.body)).toBe(202);
      expect(first.body.turn).toBe("t1");
      await wsA.next("turn_start", (m) => m.turn === "t1");
      // Straight to B, and through A (forwarded to B, the owner): the same refusal.
      expect(expectQuota(await post(b, onB, input("hello from B")), "turns", "input on B while A runs a turn")).toBe(HELD_RETRY.turns);
      expectQuota(await post(a, onB, input("hello via A")), "turns", "input for B's session sent through A");
      // bob holds no turn.
      const bobs = await post(b, bobOnB, input("bob's turn"));
      expect(bobs.status, JSON.stringify(bobs.body)).toBe(202);
      // The refused inputs started nothing on B.
      expect(wsB.messages.filter((m) => m.type === "turn_start")).toEqual([]);

      const end = await wsA.waitForTurnEnd("t1");
      expect(end.status).toBe("completed");
      const second = await post(b, onB, input("now B's turn"));
      expect(second.status, JSON.stringify(second.body)).toBe(202);
      expect(second.body.turn).toBe("t1");
      await wsB.next("turn_start", (m) => m.turn === "t1");
      // Now B's turn is the one alice holds: A refuses her.
      expectQuota(await post(a, onA, input("A again")), "turns", "input on A while B runs a turn");
      const cancelled = await post(b, onB, { type: "cancel" });
      expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(202);
      expect((await wsB.waitForTurnEnd("t1")).status).toBe("cancelled");
      const third = await post(a, onA, input("A once more"));
      expect(third.status, JSON.stringify(third.body)).toBe(202);
      expect(third.body.turn).toBe("t2");
      await post(a, onA, { type: "cancel" });
      await wsA.waitForTurnEnd("t2");
    } finally {
      wsA.close();
      wsB.close();
    }
  });

  it("tokens_per_day: a turn on A that spends the day's budget refuses the next input on B until the next UTC midnight", async () => {
    const question = QUESTION;
    const usage = turnUsage;
    expect(usage).toBeGreaterThan(0);
    await awayFromWindowEnd(DAY_MS, 20_000);
    // alice's budget (the operator's default) is exactly one turn's usage; bob's token raises his by one token.
    const { a, b } = pairs.tokens;
    const bobPlus = await mint("bob", { limits: { tokens_per_day: usage + 1 } });
    const onA = await create(a, alice);
    const onB = await create(b, alice);
    const bobA = await create(a, bobPlus);
    const bobB = await create(b, bobPlus);
    const wsA = await TestClient.connect(TestClient.sessionUrl(a.wsBase, onA, 0));
    const wsBobA = await TestClient.connect(TestClient.sessionUrl(a.wsBase, bobA, 0));
    try {
      expect((await post(a, onA, input(question))).status).toBe(202);
      const spent = await wsA.next("usage", (m) => m.turn === "t1");
      expect(spent.partial).toBe(false);
      expect(spent.inputTokens + spent.outputTokens).toBe(usage);
      expect((await wsA.waitForTurnEnd("t1")).status).toBe("completed");

      const before = DAY_MS - (Date.now() % DAY_MS);
      const retryAfterMs = expectQuota(await post(b, onB, input(question)), "tokens_per_day", "alice's next input, on B");
      const after = DAY_MS - (Date.now() % DAY_MS);
      expect(retryAfterMs).toBeLessThanOrEqual(before);
      expect(retryAfterMs).toBeGreaterThanOrEqual(after);
      expect(Math.abs(retryAfterMs - after)).toBeLessThan(3000);
      // And on A, where the tokens were spent.
      expectQuota(await post(a, onA, input(question)), "tokens_per_day", "alice's next input, on A");

      // bob: usage < usage + 1, so a second turn is still taken (on B); after it he is over.
      expect((await post(a, bobA, input(question))).status).toBe(202);
      expect((await wsBobA.waitForTurnEnd("t1")).status).toBe("completed");
      const bobSecond = await post(b, bobB, input(question));
      expect(bobSecond.status, JSON.stringify(bobSecond.body)).toBe(202);
      await eventually("bob's second turn to end", async () => {
        const turn = (await (await fetch(`${b.base}/v1/sessions/${bobB.sessionId}/turns/t1`, { headers: { authorization: `Bearer ${bobB.token}` } })).json()) as { status: string };
        return turn.status === "completed";
      });
      expectQuota(await post(a, bobA, input(question)), "tokens_per_day", "bob's third input, on A");
    } finally {
      wsA.close();
      wsBobA.close();
    }
  });

  it("a dead node holds nothing: alice's 3 sessions on a killed A stop counting once A leaves the registry; a takeover counts again", async () => {
    const { a, b, prefix } = pairs.dead;
    const onA = [await create(a, alice), await create(a, alice), await create(a, alice)];
    expectQuota(await tryCreate(b, alice), "sessions", "alice's 4th, on B, A alive");
    const registry = redis.client();
    const nodesKey = `${prefix}{quota}:nodes`;
    expect(await registry.zcard(nodesKey)).toBe(2);

    await a.kill();
    const killedAt = Date.now();
    // A refreshed at most 2 s ago and its entry lives 6 s: right after the crash its sessions still count.
    expectQuota(await tryCreate(b, alice), "sessions", "alice's 4th, on B, just after A died");
    const { refusals } = await until("a create on B once A's incarnation is gone", () => tryCreate(b, alice), 201, DEAD_NODE_GONE_MS + 4000);
    const freedAfter = Date.now() - killedAt;
    for (const r of refusals) expectQuota(r, "sessions", "refused while A still counted");
    expect(freedAfter).toBeLessThanOrEqual(DEAD_NODE_GONE_MS + 1500);
    // B pruned A from the registry in the refresh that let it see A gone.
    expect(await registry.zcard(nodesKey)).toBe(1);

    // Creates on B now count from zero of A's: 2 more fill alice's 3.
    const onB = [await create(b, alice), await create(b, alice)];
    expectQuota(await tryCreate(b, alice), "sessions", "alice's 4th on B, after A died");

    // A client coming back to one of A's sessions through B: B takes it over and counts it without a check
    // (adopt), so alice holds 4 of her 3 until two of them end.
    const back = await TestClient.connect(TestClient.sessionUrl(b.wsBase, onA[0] as Created, 0));
    try {
      const welcome = await back.next("session");
      expect(welcome.sessionId).toBe((onA[0] as Created).sessionId);
      const held = await registry.hgetall(`${prefix}q:{jwt:alice}:held`);
      const [live] = await registry.zrange(nodesKey, 0, -1);
      expect(Number(held[`sessions:${live}`])).toBe(4);
      // A's 3 are still written under its incarnation (until the hash's TTL), just no longer counted.
      const dead = Object.entries(held).filter(([field]) => field.startsWith("sessions:") && field !== `sessions:${live}`);
      expect(dead.map(([, count]) => Number(count))).toEqual([3]);
      await remove(b, onB[0] as Created);
      expectQuota(await tryCreate(b, alice), "sessions", "alice at 3 of 3 after one DELETE");
      await remove(b, onA[0] as Created);
      expect(await back.waitClosed()).toBe(4410);
      await create(b, alice);
      expectQuota(await tryCreate(b, alice), "sessions", "alice full once more");
    } finally {
      back.close();
    }
  });
});

/**
 * Input + output tokens of one demo turn on `text`, run on an in-process server with the nodes' demo settings
 * (the demo's usage is deterministic for a given input, seed and history).
 */
async function oneTurnUsage(text: string): Promise<number> {
  const server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 0 });
  try {
    const s = await server.createSession();
    const headers = { authorization: `Bearer ${s.token}`, "content-type": "application/json" };
    const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages`, { method: "POST", headers, body: JSON.stringify(input(text)) });
    expect(res.status).toBe(202);
    let usage = 0;
    await eventually("the calibration turn to end", async () => {
      const view = (await (await fetch(`${server.base}/v1/sessions/${s.sessionId}/turns/t1`, { headers })).json()) as { status: string; usage: { inputTokens: number; outputTokens: number } | null };
      if (view.status !== "completed" || !view.usage) return false;
      usage = view.usage.inputTokens + view.usage.outputTokens;
      return true;
    });
    return usage;
  } finally {
    await server.close();
  }
}
