import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent, Session, StepResult, StepSink } from "../../src/engine/index.js";
import { eventually } from "../helpers/sse-client.js";
import { type RawChunk, RawSseConnection } from "../helpers/sse-raw.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

const HEARTBEAT_MS = 200;
const RETRY_MS = 1500;
const OPENING = `: agentwire event stream\nretry: ${RETRY_MS}\n\n`;
const HEARTBEAT = ": heartbeat\n\n";

/** Says nothing until the test releases it: a model that is slow to its first token. */
class HeldAgent implements Agent {
  readonly name = "held";
  private releases: (() => void)[] = [];

  async step(_request: unknown, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    await new Promise<void>((resolve, reject) => {
      this.releases.push(resolve);
      signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true });
    });
    sink.text("Hello");
    sink.text(" there");
    sink.usage(4, 2);
    return { finish: "stop", toolCalls: [] };
  }

  release(): void {
    for (const r of this.releases.splice(0)) r();
  }
}

/** The exact event block the server must send for each logged event. */
function expectedBlocks(session: Session, afterSeq = 0): string[] {
  const replay = session.log.after(afterSeq);
  return replay.entries.map((e) => `id: ${e.seq}\nevent: ${e.event.type}\ndata: ${e.frame}\n\n`);
}

const isHeartbeat = (c: RawChunk) => c.text === HEARTBEAT;

describe("SSE on the wire", () => {
  let server: TestServer;
  const agent = new HeldAgent();
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_SSE_HEARTBEAT_MS: HEARTBEAT_MS, AGENTWIRE_SSE_RETRY_MS: RETRY_MS }, { agent });
  });
  afterAll(() => server.close());

  it("sends the exact head, an opening comment, id/event/data blocks, and heartbeats through a paused turn", async () => {
    const s = await server.createSession();
    const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events`, { Authorization: `Bearer ${s.token}` });
    await raw.waitUntil(() => raw.body.includes("event: session"), "opening and welcome");

    const [status, ...headerLines] = (raw.head as string).split("\r\n");
    expect(status).toBe("HTTP/1.1 200 OK");
    const headers = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
    expect(headers).toEqual({
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      "transfer-encoding": "chunked",
      date: expect.any(String),
      uwebsockets: expect.any(String),
    });

    const welcome = `{"type":"session","sessionId":"${s.sessionId}","protocol":1,"lastSeq":0,"resumed":false,"recovered":true,"activeTurn":null,"heartbeatMs":${HEARTBEAT_MS}}`;
    // The opening comment and the welcome may share a TCP segment: compare bytes, not chunks.
    expect(raw.body.startsWith(`${OPENING}id: 0\nevent: session\ndata: ${welcome}\n\n`)).toBe(true);
    const opened = (raw.chunks[0] as RawChunk).at;

    const posted = await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "input", text: "say hello" }),
    });
    expect(posted.status).toBe(202);
    expect(await posted.json()).toEqual({ ok: true, turn: "t1" });

    // The agent holds its first token: only heartbeats may arrive, one per interval from the opening.
    await raw.waitUntil(() => raw.chunks.filter(isHeartbeat).length >= 5, "five heartbeats");
    const beats = raw.chunks.filter(isHeartbeat).map((c) => c.at);
    const gaps = beats.map((at, i) => at - (i === 0 ? opened : (beats[i - 1] as number)));
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(HEARTBEAT_MS - 15);
      expect(gap).toBeLessThan(HEARTBEAT_MS * 2.5);
    }

    agent.release();
    await raw.waitUntil(() => raw.body.includes("event: turn_end"), "turn_end");
    const session = server.engine.get(s.sessionId) as Session;
    // Events written in one tick share a write: split the stream into blocks instead of trusting chunks.
    const events = raw.body
      .split(/(?<=\n\n)/)
      .filter((block) => block.startsWith("id: ") && !block.includes("event: session"));
    expect(events).toEqual(expectedBlocks(session));
    expect(events.map((e) => e.split("\n")[1])).toEqual(["event: turn_start", "event: token", "event: token", "event: usage", "event: turn_end"]);
    raw.destroy();
    await eventually(() => session.attachments.length === 0, "the attachment to go");
  });

  it("resumes after Last-Event-ID: the welcome carries that position, then the replay, in exact bytes", async () => {
    const s = await server.createSession();
    const first = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await first.waitUntil(() => first.body.includes("event: session"), "welcome");
    await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages?token=${s.token}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"type":"input","text":"again"}',
    });
    agent.release();
    await eventually(() => server.engine.get(s.sessionId)?.activeTurn === null, "the turn to end");
    await first.waitUntil(() => first.body.includes("event: turn_end"), "turn_end");
    first.destroy();

    const session = server.engine.get(s.sessionId) as Session;
    const again = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}&afterSeq=1`, { "Last-Event-ID": "2" });
    await again.waitUntil(() => again.body.includes("event: turn_end"), "replayed turn_end");
    const welcome = `{"type":"session","sessionId":"${s.sessionId}","protocol":1,"lastSeq":${session.log.lastSeq},"resumed":true,"recovered":true,"activeTurn":null,"heartbeatMs":${HEARTBEAT_MS}}`;
    expect(again.body).toBe(`${OPENING}id: 2\nevent: session\ndata: ${welcome}\n\n${expectedBlocks(session, 2).join("")}`);
    again.destroy();
    await eventually(() => session.attachments.length === 0, "the attachment to go");
  });

  it("releases the attachment and the stream gauge when the client goes away", async () => {
    const s = await server.createSession();
    const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await raw.waitUntil(() => raw.body.includes("event: session"), "welcome");
    const session = server.engine.get(s.sessionId) as Session;
    expect(session.attachments.length).toBe(1);
    const metric = async () => Number(/agentwire_sse_streams (\d+)/.exec(await (await fetch(`${server.base}/metrics`)).text())?.[1]);
    await eventually(async () => (await metric()) === 1, "one open stream");
    raw.destroy();
    await eventually(() => session.attachments.length === 0, "the attachment to go");
    expect(await metric()).toBe(0);
  });

  it("ends the stream with a close comment when the session is deleted; the reconnect then gets 404", async () => {
    const s = await server.createSession();
    const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await raw.waitUntil(() => raw.body.includes("event: session"), "welcome");
    const deleted = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { method: "DELETE", headers: { authorization: `Bearer ${s.token}` } });
    expect(deleted.status).toBe(204);
    await raw.waitUntil(() => raw.finished, "the end of the response");
    expect(raw.chunks.at(-1)?.text).toBe(": close 4410 session_ended\n\n");
    const again = await fetch(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`, { headers: { "Last-Event-ID": "0" } });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ error: { code: "session_not_found" } });
  });
});

describe("SSE when the server drains", () => {
  it("sends drain with a matching retry hint, then ends the stream", async () => {
    const server = await startTestServer({ AGENTWIRE_DRAIN_RECONNECT_MS: 750 });
    const s = await server.createSession();
    const raw = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await raw.waitUntil(() => raw.body.includes("event: session"), "welcome");
    await server.close();
    await raw.waitUntil(() => raw.finished, "the end of the response");
    const tail = raw.body.slice(raw.body.indexOf("retry: 750"));
    expect(tail).toBe('retry: 750\nevent: drain\ndata: {"type":"drain","reconnectAfterMs":750,"reason":"server_draining"}\n\n: close 4001 server_draining\n\n');
  });
});
