import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCode, type ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import type { Session } from "../../src/engine/index.js";
import { postMessage } from "../helpers/sse-client.js";
import { TcpRelay } from "../helpers/sse-relay.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { logged, turnText } from "../helpers/ws-client.js";

const WORDS = 40;
const INPUT = "what is 9 * 9";
const EXPECTED = (() => {
  const plan = planDemo(INPUT, 1, WORDS);
  return [...plan.intro, ...plan.reply(JSON.stringify({ value: 81 }), false)].join("");
})();
const TYPES: ServerMessage["type"][] = ["session", "turn_start", "token", "tool", "progress", "usage", "turn_end", "error", "drain"];

/** A real EventSource (the `eventsource` package) that records every event and the headers of every (re)connect. */
class Watcher {
  readonly messages: ServerMessage[] = [];
  readonly lastEventIds: string[] = [];
  readonly connects: Record<string, string>[] = [];
  readonly source: EventSource;
  private waiters: (() => void)[] = [];

  constructor(url: string) {
    this.source = new EventSource(url, {
      fetch: (input, init) => {
        this.connects.push({ ...(init.headers as Record<string, string>) });
        return fetch(input, init);
      },
    });
    for (const type of TYPES) {
      this.source.addEventListener(type, (event) => {
        // EventSource fires its own `error` (a failed or lost connection) with no data; ours always carry data.
        if (typeof event.data !== "string") return;
        this.messages.push(JSON.parse(event.data) as ServerMessage);
        this.lastEventIds.push(event.lastEventId);
        for (const wake of this.waiters.splice(0)) wake();
      });
    }
  }

  async until(predicate: (ms: ServerMessage[]) => boolean, label: string): Promise<void> {
    while (!predicate(this.messages)) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), 10_000);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function checkExact(messages: ServerMessage[]): void {
  const events = logged(messages);
  expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
  expect(events.at(-1)).toMatchObject({ type: "turn_end", status: "completed" });
  expect(turnText(messages, "t1")).toBe(EXPECTED);
}

describe("a real EventSource", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 300, AGENTWIRE_DEMO_REPLY_WORDS: WORDS, AGENTWIRE_SSE_RETRY_MS: 50 });
  });
  afterAll(() => server.close());

  it("streams a full turn: one welcome, every seq once, the demo's exact text", async () => {
    const s = await server.createSession();
    const watcher = new Watcher(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await watcher.until((ms) => ms.length > 0, "the welcome");
    await postMessage(server.base, s, { type: "input", text: INPUT });
    await watcher.until((ms) => ms.some((m) => m.type === "turn_end"), "turn_end");
    watcher.source.close();
    expect(watcher.messages.filter((m) => m.type === "session")).toHaveLength(1);
    expect(watcher.connects).toHaveLength(1);
    checkExact(watcher.messages);
    // Each logged event's lastEventId is its own seq: what a browser would send on reconnect.
    const seqIds = watcher.messages.flatMap((m, i) => ("seq" in m && m.seq !== undefined ? [[String(m.seq), watcher.lastEventIds[i]]] : []));
    for (const [seq, id] of seqIds) expect(id).toBe(seq);
  });

  it("reconnects by itself with Last-Event-ID after the server ends the stream mid-turn: exact text, no duplicates", async () => {
    const s = await server.createSession();
    const watcher = new Watcher(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await watcher.until((ms) => ms.length > 0, "the welcome");
    await postMessage(server.base, s, { type: "input", text: INPUT });
    await watcher.until((ms) => ms.filter((m) => m.type === "token").length >= 5, "five tokens");
    const session = server.engine.get(s.sessionId) as Session;
    const before = logged(watcher.messages).at(-1)?.seq as number;
    for (const attachment of [...session.attachments]) attachment.close(CloseCode.SlowConsumer, "slow_consumer");
    await watcher.until((ms) => ms.some((m) => m.type === "turn_end"), "turn_end");
    watcher.source.close();

    expect(watcher.connects).toHaveLength(2);
    expect(watcher.connects[0]?.["Last-Event-ID"]).toBeUndefined();
    // Events may have arrived between the close and the end of the stream; the header names the last one seen.
    const resumedFrom = Number(watcher.connects[1]?.["Last-Event-ID"]);
    expect(resumedFrom).toBeGreaterThanOrEqual(before);
    const welcomes = watcher.messages.filter((m) => m.type === "session");
    expect(welcomes[1]).toMatchObject({ resumed: true, recovered: true });
    checkExact(watcher.messages);
  });

  it("reconnects by itself after the connection is cut mid-turn (a network blink): exact text, no duplicates", async () => {
    const relay = await TcpRelay.start(server.port);
    const s = await server.createSession();
    const watcher = new Watcher(`http://127.0.0.1:${relay.port}/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await watcher.until((ms) => ms.length > 0, "the welcome");
    await postMessage(server.base, s, { type: "input", text: INPUT });
    await watcher.until((ms) => ms.filter((m) => m.type === "token").length >= 3, "three tokens");
    relay.cut();
    const seenAtCut = logged(watcher.messages).at(-1)?.seq as number;
    await watcher.until((ms) => ms.some((m) => m.type === "turn_end"), "turn_end");
    watcher.source.close();
    await relay.close();

    expect(watcher.connects.length).toBe(2);
    expect(Number(watcher.connects[1]?.["Last-Event-ID"])).toBeGreaterThanOrEqual(seenAtCut);
    checkExact(watcher.messages);
    // The server let go of the cut stream: only the second connection was ever attached after the cut.
    const session = server.engine.get(s.sessionId) as Session;
    expect(session.attachments.length).toBeLessThanOrEqual(1);
  });
});
