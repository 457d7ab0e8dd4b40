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
});
