// The SSE-specific parts of resuming (Last-Event-ID, the welcome's id); resume after a drop at any event is in test/conformance.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SseClient, postMessage } from "../helpers/sse-client.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { logged } from "../helpers/ws-client.js";

describe("resume over SSE", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 400, AGENTWIRE_DEMO_REPLY_WORDS: 5 });
  });
  afterAll(() => server.close());

  it("a reconnect before any logged event resumes from the welcome's id: nothing said meanwhile is lost", async () => {
    const s = await server.createSession();
    const first = await SseClient.open(SseClient.url(server.base, s));
    await first.next("session");
    expect(first.events[0]?.id).toBe("0");
    first.close();
    await postMessage(server.base, s, { type: "input", text: "1 + 1" });
    const again = await SseClient.open(SseClient.url(server.base, s), { "Last-Event-ID": first.parser.lastEventId });
    const end = await again.waitForTurnEnd();
    expect(logged(again.messages).map((e) => e.seq)).toEqual(Array.from({ length: end.seq }, (_, i) => i + 1));
    again.close();
  });

  it("takes the position from Last-Event-ID over ?lastEventId= over ?afterSeq=, and streams live with none", async () => {
    const s = await server.createSession();
    const writer = await SseClient.open(SseClient.url(server.base, s));
    await postMessage(server.base, s, { type: "input", text: "2 + 2" });
    const end = await writer.waitForTurnEnd();
    writer.close();
    const seqsFrom = async (query: string, headers: Record<string, string> = {}) => {
      const c = await SseClient.open(SseClient.url(server.base, s, query), headers);
      await c.waitUntil(() => logged(c.messages).at(-1)?.seq === end.seq, "the replay to reach the end");
      c.close();
      return { id: c.events[0]?.id, seqs: logged(c.messages).map((e) => e.seq) };
    };
    const tail = (from: number) => Array.from({ length: end.seq - from }, (_, i) => from + 1 + i);
    expect(await seqsFrom("afterSeq=3")).toEqual({ id: "3", seqs: tail(3) });
    expect(await seqsFrom("afterSeq=3&lastEventId=5")).toEqual({ id: "5", seqs: tail(5) });
    expect(await seqsFrom("afterSeq=3&lastEventId=5", { "Last-Event-ID": "7" })).toEqual({ id: "7", seqs: tail(7) });

    // No position: the welcome, then only what happens from now on.
    const live = await SseClient.open(SseClient.url(server.base, s));
    expect(await live.next("session")).toMatchObject({ resumed: false, recovered: true, lastSeq: end.seq });
    expect(live.events[0]?.id).toBe(String(end.seq));
    await postMessage(server.base, s, { type: "input", text: "3 + 3" });
    await live.waitForTurnEnd("t2");
    expect(logged(live.messages)[0]).toMatchObject({ type: "turn_start", seq: end.seq + 1, turn: "t2" });
    live.close();
  });
});

describe("a position older than the log over SSE", () => {
  it("answers recovered: false with the stream's position at lastSeq, so the next reconnect is exact again", async () => {
    const server = await startTestServer({ AGENTWIRE_LOG_MAX_EVENTS: 16, AGENTWIRE_DEMO_REPLY_WORDS: 30 });
    const s = await server.createSession();
    const watcher = await SseClient.open(SseClient.url(server.base, s));
    await watcher.next("session");
    await postMessage(server.base, s, { type: "input", text: "2 * 3" });
    const end = await watcher.waitForTurnEnd();
    expect(end.seq).toBeGreaterThan(16);
    watcher.close();
    const late = await SseClient.open(SseClient.url(server.base, s), { "Last-Event-ID": "1" });
    const welcome = await late.next("session");
    expect(welcome).toMatchObject({ resumed: true, recovered: false, lastSeq: end.seq });
    expect(late.events[0]?.id).toBe(String(end.seq));
    late.close();
    const next = await SseClient.open(SseClient.url(server.base, s), { "Last-Event-ID": late.parser.lastEventId });
    expect(await next.next("session")).toMatchObject({ resumed: true, recovered: true, lastSeq: end.seq });
    next.close();
    await server.close();
  });
});
