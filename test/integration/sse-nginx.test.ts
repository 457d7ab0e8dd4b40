import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planDemo } from "../../src/agents/demo.js";
import { type RunningNginx, requireNginxOrSkip, startNginx } from "../helpers/nginx.js";
import { SseClient } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

const TOKENS_PER_SEC = 50;
const WORDS = 6;
const HEARTBEAT_MS = 200;
const INPUT = "what is 4 * 4";
const SCRIPT = (() => {
  const plan = planDemo(INPUT, 1, WORDS);
  return [...plan.intro, ...plan.reply(JSON.stringify({ value: 16 }), false)].join("");
})();

// Locally a missing nginx skips these, loudly; in CI it is a failure (.ci/run installs nginx).
const binary = requireNginxOrSkip();

describe.runIf(binary !== null)("through real nginx with docs/deploy/nginx.conf", () => {
  let server: TestServer;
  let nginx: RunningNginx;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: TOKENS_PER_SEC, AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_SSE_HEARTBEAT_MS: HEARTBEAT_MS });
    nginx = await startNginx(binary as string, server.port);
  });
  afterAll(async () => {
    await nginx?.stop();
    await server?.close();
  });

  it("passes SSE tokens one by one as the agent makes them, not in one buffered lump", async () => {
    const create = await fetch(`${nginx.base}/v1/sessions`, { method: "POST" });
    const s = (await create.json()) as { sessionId: string; token: string };
    const stream = await SseClient.open(SseClient.url(nginx.base, s));
    expect(stream.response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    await stream.next("session");
    const posted = await fetch(`${nginx.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "input", text: INPUT }),
    });
    expect(posted.status).toBe(202);
    await stream.waitForTurnEnd();
    stream.close();

    expect(turnText(stream.messages, "t1")).toBe(SCRIPT);
    const events = logged(stream.messages);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    // At 50 per second the agent spends ~20 ms per token: arrivals must spread the same way.
    const arrivals = stream.events.filter((e) => e.event === "token").map((e) => e.at);
    const spread = (arrivals.at(-1) as number) - (arrivals[0] as number);
    expect(spread).toBeGreaterThan(((arrivals.length - 1) * 1000) / TOKENS_PER_SEC / 2);
    const lump = Math.max(...arrivals.map((at) => arrivals.filter((other) => other >= at && other < at + 5).length));
    expect(lump).toBeLessThanOrEqual(3);
  });

  it("passes heartbeat comments at their interval on an idle stream", async () => {
    const s = await server.createSession();
    const stream = await SseClient.open(SseClient.url(nginx.base, s));
    await stream.waitUntil(() => stream.comments.filter((c) => c.text === " heartbeat").length >= 3, "three heartbeats");
    stream.close();
    const beats = stream.comments.filter((c) => c.text === " heartbeat").map((c) => c.at);
    for (let i = 1; i < beats.length; i++) {
      const gap = (beats[i] as number) - (beats[i - 1] as number);
      expect(gap).toBeGreaterThan(HEARTBEAT_MS / 2);
      expect(gap).toBeLessThan(HEARTBEAT_MS * 2.5);
    }
  });

  it("upgrades WebSockets and carries a turn both ways", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(nginx.wsBase, s));
    expect(await client.next("session")).toMatchObject({ sessionId: s.sessionId, resumed: false });
    client.send({ type: "input", id: "via-nginx", text: INPUT });
    expect(await client.next("ack")).toMatchObject({ id: "via-nginx", turn: "t1" });
    await client.waitForTurnEnd();
    expect(turnText(client.messages, "t1")).toBe(SCRIPT);
    client.close();
  });

  it("keeps session tokens out of its access log, and answers a creation flood from one address 429", async () => {
    const s = await server.createSession();
    const res = await fetch(`${nginx.base}/v1/sessions/${s.sessionId}?token=${s.token}`);
    expect(res.status).toBe(200);
    // nginx writes the line once the response is done; wait for it, bounded.
    const deadline = Date.now() + 5000;
    let log = "";
    while (!log.includes(`/v1/sessions/${s.sessionId} `) && Date.now() < deadline) {
      log = existsSync(nginx.accessLog) ? readFileSync(nginx.accessLog, "utf8") : "";
      if (!log.includes(`/v1/sessions/${s.sessionId} `)) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(log).toContain(`"GET /v1/sessions/${s.sessionId} HTTP/1.1" 200`);
    expect(log).not.toContain(s.token);
    expect(log).not.toContain("token=");
    // A burst of 100 passes, then 20 a second: 140 at once from one address cannot all pass.
    const answers = await Promise.all(
      Array.from({ length: 140 }, async () => {
        const r = await fetch(`${nginx.base}/v1/sessions`, { method: "POST" });
        return { status: r.status, retryAfter: r.headers.get("retry-after"), body: (await r.json()) as unknown };
      }),
    );
    expect(answers.filter((a) => a.status === 201).length).toBeGreaterThanOrEqual(100);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length + answers.filter((a) => a.status === 201).length).toBe(140);
    for (const r of refused) {
      expect(r.retryAfter).toBe("1");
      expect(r.body).toEqual({ error: { code: "rate_limited", message: "too many requests from this address", retryable: true, retryAfterMs: 1000 } });
    }
    expect((await fetch(`${nginx.base}/metrics`)).status).toBe(404);
  });
});
