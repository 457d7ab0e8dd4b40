// The client's connection life against real servers: fallback to SSE when upgrades are blocked and back to WebSocket
// when they pass again, terminal closes with their reason, an input whose ack was lost, sends while offline, client
// tools, and a reload that resumes from the store.
import WebSocket from "ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, type ClientOptions, type ConnectionState, ErrorCode, memoryStore } from "@agentwire/client";
import type { LoggedEvent, ServerMessage } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import { RecordingDemoAgent } from "../helpers/agents.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TcpProxy } from "../../bench/tcp-proxy.js";

const isLogged = (m: ServerMessage): m is LoggedEvent => "seq" in m && typeof m.seq === "number";
const clients: AgentwireClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(url: string, options: Partial<ClientOptions> = {}) {
  const c = new AgentwireClient({ url, WebSocket, store: memoryStore(), reconnect: { baseMs: 5, maxMs: 20 }, ...options });
  clients.push(c);
  const states: ConnectionState[] = [];
  const logged: LoggedEvent[] = [];
  c.on("state", (s) => states.push(s));
  c.on("message", (m) => isLogged(m) && logged.push(m));
  return { c, states, logged };
}

function until(c: AgentwireClient, check: (s: ConnectionState) => boolean): Promise<ConnectionState> {
  if (check(c.state)) return Promise.resolve(c.state);
  return new Promise((resolve) => {
    const off = c.on("state", (s) => {
      if (!check(s)) return;
      off();
      resolve(s);
    });
  });
}

const seqsOf = (events: LoggedEvent[]) => events.map((e) => e.seq);
const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe("the client against a real server", () => {
  const agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 4 });
  let server: TestServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startTestServer({}, { agent });
    proxy = await TcpProxy.start(server.port);
  });
  afterAll(async () => {
    await proxy.close();
    await server.close();
  });
  afterEach(() => {
    proxy.blockUpgrades = false;
    proxy.cutOnServerData = null;
    proxy.retarget(server.port);
  });

  it("falls back to SSE + POST when upgrades are refused, then returns to WebSocket when they pass", async () => {
    proxy.blockUpgrades = true;
    const { c, logged } = client(proxy.base, { websocketRetryMs: 50 });
    await c.connect();
    expect(c.state).toEqual({ status: "fallback", transport: "sse" });
    expect(proxy.upgrades).toBeGreaterThanOrEqual(2);
    const first = await c.send("what is 3 * 3").done;
    expect(first).toMatchObject({ status: "completed", reason: "stop" });
    proxy.blockUpgrades = false;
    await until(c, (s) => s.status === "open");
    expect(c.state).toEqual({ status: "open", transport: "websocket" });
    const second = await c.send("what is 4 * 4").done;
    expect(second.status).toBe("completed");
    expect(seqsOf(logged)).toEqual(oneToN(logged.length));
    expect(logged.filter((e) => e.type === "turn_end").map((e) => e.turn)).toEqual(["t1", "t2"]);
  });

  it("moves from SSE back to WebSocket in the middle of a turn without losing or repeating a byte", async () => {
    const paced = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 300, AGENTWIRE_DEMO_REPLY_WORDS: 120 });
    const front = await TcpProxy.start(paced.port);
    try {
      front.blockUpgrades = true;
      const { c, logged } = client(front.base, { websocketRetryMs: 100 });
      await c.connect();
      expect(c.state.transport).toBe("sse");
      const turn = c.send("what is 11 * 11");
      await new Promise<void>((resolve) => turn.on("text", () => turn.text.length > 20 && resolve()));
      front.blockUpgrades = false;
      await until(c, (s) => s.status === "open");
      expect(turn.ended).toBe(false);
      const result = await turn.done;
      const plan = planDemo("what is 11 * 11", 1, 120);
      expect(result.text).toBe([...plan.intro, ...plan.reply(JSON.stringify({ value: 121 }), false)].join(""));
      expect(seqsOf(logged)).toEqual(oneToN(logged.length));
    } finally {
      await front.close();
      await paced.close();
    }
  });

  it("stops on a terminal close with its reason: an unknown session (4404), a wrong token (4401)", async () => {
    const s = await server.createSession();
    for (const [session, close, code] of [
      [{ sessionId: "s_gone", token: "t" }, 4404, ErrorCode.SessionNotFound],
      [{ sessionId: s.sessionId, token: "wrong" }, 4401, ErrorCode.Unauthorized],
    ] as const) {
      const { c, states } = client(server.base, { session });
      await expect(c.connect()).rejects.toMatchObject({ code });
      expect(c.state).toMatchObject({ status: "closed", reason: { code: close } });
      expect(states.map((x) => x.status).filter((x) => x === "reconnecting")).toEqual([]);
    }
  });

  it.each(["websocket", "sse"] as const)("an input whose ack is cut off is sent again and starts one turn (%s)", async (transport) => {
    const { c } = client(proxy.base, { transport });
    await c.connect();
    const sessionId = c.sessionId as string;
    let cut = 0;
    // The server's answer to the input: an ack frame over WebSocket, the POST's 202 body over SSE.
    proxy.cutOnServerData = (chunk) => cut === 0 && /"type":"ack"|"ok":true/.test(chunk.toString("latin1")) && ++cut > 0;
    const result = await c.send("what is 6 * 6").done;
    expect(cut).toBe(1);
    expect(result.status).toBe("completed");
    expect(agent.requests.filter((r) => r.sessionId === sessionId && r.step === 0)).toHaveLength(1);
  });

  it("holds sends made while offline and delivers each once when the network is back", async () => {
    const { c, logged } = client(proxy.base, { transport: "websocket" });
    await c.connect();
    proxy.retarget(1); // nothing listens on port 1: every reconnect fails until the network is back
    proxy.resetAll();
    await until(c, (s) => s.status === "reconnecting");
    const typed = c.type("what is ");
    const turn = c.send("7 * 7");
    proxy.retarget(server.port);
    await typed;
    const result = await turn.done;
    expect(result.status).toBe("completed");
    expect(logged.find((e) => e.type === "turn_start")).toMatchObject({ turn: "t1", input: "what is 7 * 7" });
    expect(logged.filter((e) => e.type === "turn_start")).toHaveLength(1);
  });

  it("answers a client tool with its handler, once, and the turn uses the result", async () => {
    const calls: unknown[] = [];
    const { c } = client(server.base, { tools: { lookup: (args) => (calls.push(args), { found: "forty-two" }) } });
    await c.connect();
    await c.configure({ tools: [{ name: "lookup", description: "finds things" }] });
    const turn = c.send("please lookup the answer");
    const result = await turn.done;
    expect(calls).toEqual([{ text: "please lookup the answer" }]);
    expect(result.status).toBe("completed");
    expect(result.text).toContain("The lookup tool says");
  });

  it("a reload with the same store resumes the same session after the last seq it saw", async () => {
    const store = memoryStore();
    const first = client(server.base, { store });
    await first.c.connect();
    await first.c.send("what is 8 * 8").done;
    first.c.close();
    const sessionId = first.c.sessionId;
    const reloaded = client(server.base, { store });
    await reloaded.c.connect();
    expect(reloaded.c.sessionId).toBe(sessionId);
    expect(reloaded.c.lastSeq).toBe(first.logged.length);
    await reloaded.c.send("what is 9 * 9").done;
    // Nothing replayed twice: the reloaded client's events continue where the first one stopped.
    expect(seqsOf([...first.logged, ...reloaded.logged])).toEqual(oneToN(first.logged.length + reloaded.logged.length));
  });

  it("tells the application when the log no longer holds its position", async () => {
    const small = await startTestServer({ AGENTWIRE_LOG_MAX_EVENTS: 16, AGENTWIRE_DEMO_REPLY_WORDS: 40 });
    try {
      const s = await small.createSession();
      const { c } = client(small.base, { session: { ...s, lastSeq: 0 } });
      await c.connect();
      await c.send("what is 1 + 1").done;
      c.close();
      const late = client(small.base, { session: { ...s, lastSeq: 1 } });
      const recovered = new Promise<{ lastSeq: number }>((resolve) => late.c.on("recovered", resolve));
      await late.c.connect();
      expect(await recovered).toEqual({ lastSeq: c.lastSeq });
      expect(late.c.lastSeq).toBe(c.lastSeq);
    } finally {
      await small.close();
    }
  });
});
