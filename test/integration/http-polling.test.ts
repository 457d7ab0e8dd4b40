import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planDemo } from "../../src/agents/demo.js";
import { SseClient, postMessage } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { turnText } from "../helpers/ws-client.js";

const WORDS = 10;
const INPUT = "what is 12 * 12";
const POLL_INTERVAL_MS = 10;

interface TurnView {
  turn: string;
  status: string;
  reason: string | null;
  input: string;
  text: string;
  usage: { inputTokens: number; outputTokens: number } | null;
  endedAt: number | null;
  lastSeq: number;
}

describe("the polling path: POST input, poll the turn", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 200, AGENTWIRE_DEMO_REPLY_WORDS: WORDS });
  });
  afterAll(() => server.close());

  it("runs the turn with nobody listening; polls see the text grow, then the result the stream would have shown", async () => {
    const s = await server.createSession();
    const messagesUrl = `${server.base}/v1/sessions/${s.sessionId}/messages`;
    const posted = await postMessage(server.base, s, { type: "input", id: "job-1", text: INPUT });
    expect(posted.status).toBe(202);
    expect(posted.body).toEqual({ ok: true, turn: "t1", id: "job-1" });
    const turnUrl = new URL(posted.headers.get("location") as string, messagesUrl).href;
    expect(turnUrl).toBe(`${server.base}/v1/sessions/${s.sessionId}/turns/t1`);

    // The client's own poll loop: the interval is the job pattern's, not a wait for the server.
    const polls: TurnView[] = [];
    for (;;) {
      const res = await fetch(turnUrl, { headers: { authorization: `Bearer ${s.token}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("no-store");
      const view = (await res.json()) as TurnView;
      polls.push(view);
      if (view.status !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
    const final = polls.at(-1) as TurnView;
    const plan = planDemo(INPUT, 1, WORDS);
    const script = [...plan.intro, ...plan.reply(JSON.stringify({ value: 144 }), false)].join("");
    expect(final).toMatchObject({ turn: "t1", status: "completed", reason: "stop", input: INPUT, text: script, endedAt: expect.any(Number) });
    expect(final.usage?.outputTokens).toBeGreaterThan(0);

    const running = polls.filter((p) => p.status === "running");
    expect(running.length).toBeGreaterThan(0);
    for (const p of running) {
      expect(script.startsWith(p.text)).toBe(true);
      expect(p).toMatchObject({ usage: null, reason: null, endedAt: null });
    }

    // The same turn, streamed from the log: the text and usage match what the poll returned.
    const stream = await SseClient.open(SseClient.url(server.base, s, "afterSeq=0"));
    await stream.waitForTurnEnd("t1");
    stream.close();
    expect(turnText(stream.messages, "t1")).toBe(final.text);
    const usage = stream.messages.find((m) => m.type === "usage");
    expect(usage).toMatchObject({ inputTokens: final.usage?.inputTokens, outputTokens: final.usage?.outputTokens, partial: false });
    expect(final.lastSeq).toBe(stream.messages.filter((m) => m.type === "turn_end").at(-1)?.seq);
  });

  it("reports a cancelled turn with its partial text and reason", async () => {
    const s = await server.createSession();
    await postMessage(server.base, s, { type: "input", text: INPUT });
    expect((await postMessage(server.base, s, { type: "cancel" })).status).toBe(202);
    const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}/turns/t1?token=${s.token}`);
    const view = (await res.json()) as TurnView;
    expect(view).toMatchObject({ status: "cancelled", reason: "cancelled", usage: { inputTokens: expect.any(Number), outputTokens: expect.any(Number) } });
  });
});
