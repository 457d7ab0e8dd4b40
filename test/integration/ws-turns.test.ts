import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planDemo } from "../../src/agents/demo.js";
import { GateAgent, RecordingDemoAgent } from "../helpers/agents.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

describe("WebSocket turns against a real server", () => {
  let server: TestServer;
  const agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 12 });
  beforeAll(async () => {
    server = await startTestServer({}, { agent });
  });
  afterAll(() => server.close());

  it("streams a full demo turn: exact order, gap-free seq, text equal to the script", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    const welcome = await client.next("session");
    expect(welcome).toEqual({ type: "session", sessionId: s.sessionId, protocol: 1, lastSeq: 0, resumed: false, recovered: true, activeTurn: null, heartbeatMs: 32_000 });
    client.send({ type: "input", id: "q1", text: "what is 12 * 12?" });
    await client.waitForTurnEnd();
    const plan = planDemo("what is 12 * 12?", 1, 12);
    const expected = [...plan.intro, ...plan.reply('{"value":144}', false)].join("");
    expect(turnText(client.messages, "t1")).toBe(expected);
    const events = logged(client.messages);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(client.messages[1]).toEqual({ type: "ack", id: "q1", turn: "t1" });
    expect(events[0]).toEqual({ type: "turn_start", seq: 1, turn: "t1", input: "what is 12 * 12?" });
    expect(events.at(-2)).toMatchObject({ type: "usage", partial: false });
    expect(events.at(-1)).toMatchObject({ type: "turn_end", status: "completed", reason: "stop" });
    const tools = events.filter((e) => e.type === "tool");
    expect(tools.map((t) => (t as { phase: string }).phase)).toEqual(["start", ...plan.call.argsChunks.map(() => "delta"), "ready", "result"]);
    expect(tools.filter((t) => (t as { phase: string }).phase === "delta").map((t) => (t as { argsDelta: string }).argsDelta).join("")).toBe('{"expression":"12 * 12"}');
    client.close();
  });

  it("a snapshot over HTTP matches what was streamed", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "input", text: "2+2" });
    const end = await client.waitForTurnEnd();
    const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
    const snap = (await res.json()) as { lastSeq: number; activeTurn: null; turns: { id: string; status: string; text: string }[]; history: { role: string }[] };
    expect(snap.lastSeq).toBe(end.seq);
    expect(snap.activeTurn).toBeNull();
    expect(snap.turns).toEqual([expect.objectContaining({ id: "t1", status: "completed", text: turnText(client.messages, "t1") })]);
    expect(snap.history.map((h) => h.role)).toEqual(["user", "assistant", "tool", "assistant"]);
    client.close();
  });
});

describe("cancel, interrupt, buffering and client tools over WebSocket", () => {
  let server: TestServer;
  const agent = new RecordingDemoAgent({ tokensPerSecond: 200, replyWords: 400 });
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_CLIENT_TOOL_TIMEOUT_MS: 150 }, { agent });
  });
  afterAll(() => server.close());

  it("cancel mid-stream: turn_end cancelled, no token after it, the agent's signal aborted", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "input", text: "tell me a long story" });
    await client.waitUntil((ms) => ms.filter((m) => m.type === "token").length >= 5, "5 tokens");
    const signalsBefore = agent.signals.length;
    client.send({ type: "cancel", id: "stop" });
    const end = await client.waitForTurnEnd();
    expect(end).toMatchObject({ status: "cancelled", reason: "cancelled" });
    expect(agent.signals[signalsBefore - 1]?.aborted).toBe(true);
    // A ping round trip after the turn_end proves nothing else of the turn was on its way.
    client.send({ type: "ping", id: "after" });
    await client.next("pong", (p) => p.id === "after");
    const endIndex = client.messages.indexOf(end);
    expect(client.messages.slice(endIndex + 1).filter((m) => m.type === "token")).toEqual([]);
    const usage = client.messages[endIndex - 1];
    expect(usage).toMatchObject({ type: "usage", partial: true });
    expect(client.messages.find((m) => m.type === "ack")).toEqual({ type: "ack", id: "stop" });
    client.close();
  });

  it("interrupt by new input: the old turn ends interrupted before the new one starts", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "input", text: "first question" });
    await client.waitUntil((ms) => ms.some((m) => m.type === "token"), "a token");
    client.send({ type: "input", text: "actually, 3 + 4", interrupt: true });
    await client.next("turn_start", (m) => m.turn === "t2");
    client.send({ type: "cancel" });
    await client.waitForTurnEnd("t2");
    const events = logged(client.messages);
    const ends = events.filter((e) => e.type === "turn_end");
    expect(ends.map((e) => [e.turn, (e as { reason: string }).reason])).toEqual([["t1", "interrupted"], ["t2", "cancelled"]]);
    const t1End = events.findIndex((e) => e.type === "turn_end" && e.turn === "t1");
    const t2Start = events.findIndex((e) => e.type === "turn_start" && e.turn === "t2");
    expect(t2Start).toBe(t1End + 1);
    expect(events.slice(t1End + 1).some((e) => "turn" in e && e.turn === "t1")).toBe(false);
    client.close();
  });

  it("non-final inputs buffer (no turn) until the final one", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    for (const part of ["what ", "is ", "5 * "]) client.send({ type: "input", text: part, final: false });
    client.send({ type: "ping", id: "sync" });
    await client.next("pong");
    expect(logged(client.messages)).toEqual([]);
    client.send({ type: "input", text: "5" });
    const start = await client.next("turn_start");
    expect(start.input).toBe("what is 5 * 5");
    client.send({ type: "cancel" });
    await client.waitForTurnEnd();
    client.close();
  });

  it("client tool round trip, then a timeout when the client stays silent", async () => {
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "configure", id: "cfg", tools: [{ name: "weather", description: "local weather", parameters: { type: "object" } }] });
    await client.next("ack", (a) => a.id === "cfg");
    client.send({ type: "input", text: "weather please" });
    const ready = await client.next("tool", (t) => t.phase === "ready");
    expect(ready).toMatchObject({ name: "weather", executor: "client", args: { text: "weather please" } });
    client.send({ type: "tool_result", id: "r1", callId: ready.callId, output: { celsius: 21 } });
    const result = await client.next("tool", (t) => t.phase === "result");
    expect(result).toMatchObject({ callId: ready.callId, output: { celsius: 21 }, isError: false });
    await client.next("token", (t) => t.text.includes("21"));
    client.send({ type: "cancel" });
    await client.waitForTurnEnd("t1");

    client.send({ type: "input", text: "weather again" });
    const timedOut = await client.next("tool", (t) => t.phase === "result" && t.turn === "t2");
    expect(timedOut).toMatchObject({ isError: true, code: "tool_timeout" });
    client.send({ type: "cancel" });
    await client.waitForTurnEnd("t2");
    client.close();
  });
});

describe("a turn with nobody attached", () => {
  it("keeps running and is there to replay", async () => {
    const agent = new GateAgent();
    const server = await startTestServer({}, { agent });
    const s = await server.createSession();
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    client.send({ type: "input", text: "go" });
    await client.next("token");
    client.close();
    await client.waitClosed();
    agent.release();
    const again = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, 0));
    await again.waitForTurnEnd();
    expect(turnText(again.messages, "t1")).toBe("waiting done");
    again.close();
    await server.close();
  });
});

describe("the demo page", () => {
  it("is served at / and drives the same WebSocket route", async () => {
    const server = await startTestServer();
    const res = await fetch(`${server.base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await res.text();
    expect(html).toContain("/v1/sessions/");
    expect(html).toContain('"agentwire.v1", "bearer." + session.token');
    await server.close();
  });
});
