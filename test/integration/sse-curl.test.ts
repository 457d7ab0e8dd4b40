import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { type SseEvent, SseParser, postMessage } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { logged, turnText } from "../helpers/ws-client.js";

const WORDS = 12;
const INPUT = "what is 6 * 7";

/** `curl -N` as a person would run it in a terminal; its stdout is parsed as it arrives. */
class Curl {
  readonly events: SseEvent[] = [];
  readonly messages: ServerMessage[] = [];
  private readonly child: ChildProcess;
  private waiters: (() => void)[] = [];
  private exited = false;
  stderr = "";

  constructor(url: string, headers: Record<string, string> = {}) {
    const args = ["-N", "-s", "-S", ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
    this.child = spawn("curl", args, { stdio: ["ignore", "pipe", "pipe"] });
    const parser = new SseParser((event) => {
      this.events.push(event);
      this.messages.push(JSON.parse(event.data) as ServerMessage);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child.stdout?.setEncoding("utf8").on("data", (text: string) => parser.feed(text));
    this.child.stderr?.setEncoding("utf8").on("data", (text: string) => (this.stderr += text));
    this.child.on("exit", () => {
      this.exited = true;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  async until(predicate: (ms: ServerMessage[]) => boolean, label: string): Promise<void> {
    while (!predicate(this.messages)) {
      if (this.exited) throw new Error(`curl exited before ${label}: ${this.stderr}`);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), 10_000);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

describe("curl -N against the SSE route", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 100, AGENTWIRE_DEMO_REPLY_WORDS: WORDS });
  });
  afterAll(() => server.close());

  it("shows each event as it arrives, with the demo's exact text", async () => {
    const s = await server.createSession();
    const curl = new Curl(`${server.base}/v1/sessions/${s.sessionId}/events`, { Authorization: `Bearer ${s.token}` });
    await curl.until((ms) => ms.some((m) => m.type === "session"), "the welcome");
    await postMessage(server.base, s, { type: "input", text: INPUT });
    await curl.until((ms) => ms.some((m) => m.type === "turn_end"), "turn_end");
    curl.stop();

    const events = logged(curl.messages);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(curl.events.filter((e) => e.event !== "session").map((e) => e.id)).toEqual(events.map((e) => String(e.seq)));
    const plan = planDemo(INPUT, 1, WORDS);
    expect(turnText(curl.messages, "t1")).toBe([...plan.intro, ...plan.reply(JSON.stringify({ value: 42 }), false)].join(""));

    // Paced at 100 per second, the tokens must reach curl spread over time, not in one lump at the end.
    const tokens = curl.events.filter((e) => e.event === "token");
    const spread = (tokens.at(-1)?.at ?? 0) - (tokens[0]?.at ?? 0);
    expect(spread).toBeGreaterThan(tokens.length * 5);
    expect(new Set(tokens.map((t) => Math.round(t.at))).size).toBeGreaterThan(tokens.length / 2);
  });

  it("resumes with a Last-Event-ID header and with ?lastEventId= in the URL", async () => {
    const s = await server.createSession();
    const first = new Curl(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await first.until((ms) => ms.length > 0, "the welcome");
    await postMessage(server.base, s, { type: "input", text: INPUT });
    await first.until((ms) => ms.some((m) => m.type === "turn_end"), "turn_end");
    first.stop();
    const all = logged(first.messages);

    const byHeader = new Curl(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`, { "Last-Event-ID": "4" });
    const byQuery = new Curl(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}&lastEventId=4`);
    for (const c of [byHeader, byQuery]) {
      await c.until((ms) => ms.some((m) => m.type === "turn_end"), "the replayed turn_end");
      c.stop();
      expect(c.messages[0]).toMatchObject({ type: "session", resumed: true, recovered: true });
      expect(logged(c.messages)).toEqual(all.slice(4));
    }
  });
});
