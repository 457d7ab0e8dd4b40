// Regression: client JSON nested thousands of levels deep (which used to end the node with a RangeError inside JSON.stringify) and oversized tool schemas and outputs are refused at parse time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage, TOOL_OUTPUT_MAX_CHARS, TOOL_PARAMETERS_MAX_CHARS } from "@agentwire/protocol";
import { requireRedisOrSkip, startRedis, type RedisProc } from "../helpers/redis.js";
import { type ServerProc, type Session, expectCompletedTurn, startServerProc } from "../helpers/server-proc.js";
import { SseClient } from "../helpers/sse-client.js";
import { TestClient, logged } from "../helpers/ws-client.js";
import { nestedJson } from "./arbitraries.js";

const MAX_PAYLOAD = 256 * 1024;
/** About 9 KB: the configure that ended the node. */
const DEEP_PARAMETERS = `{"type":"configure","id":"deep-1","tools":[{"name":"deep","parameters":{"a":${nestedJson(4500)}}}]}`;
const deepOutput = (callId: string) => `{"type":"tool_result","id":"deep-2","callId":"${callId}","output":${nestedJson(4500)}}`;
/** Both caps are in characters of JSON; these go well past them. */
const BIG_PARAMETERS = JSON.stringify({ type: "configure", id: "big-1", tools: [{ name: "a" }, { name: "big", parameters: { type: "object", description: "p".repeat(TOOL_PARAMETERS_MAX_CHARS + 1024) } }] });
const BIG_OUTPUT = JSON.stringify({ type: "tool_result", id: "big-2", callId: "call_none", output: "o".repeat(TOOL_OUTPUT_MAX_CHARS + 4096) });

const under = (field: string | undefined, path: string) => field === path || (field?.startsWith(`${path}.`) ?? false);

/** Sends one frame and a ping; resolves with everything answered up to the pong. */
async function answersTo(client: TestClient, frame: string, probe: string): Promise<ServerMessage[]> {
  const start = client.messages.length;
  client.ws.send(frame);
  client.send({ type: "ping", id: probe });
  await client.waitUntil((ms) => client.closeCode !== null || ms.some((m, i) => i >= start && m.type === "pong" && m.id === probe), `the pong for ${probe}`);
  return client.messages.slice(start);
}

/** The error a refused frame gets, checked to be the only answer before the probe's pong. */
async function refusal(client: TestClient, frame: string, probe: string): Promise<Extract<ServerMessage, { type: "error" }>> {
  const answers = await answersTo(client, frame, probe);
  expect(client.closeCode, "the link stays open").toBeNull();
  expect(answers.map((m) => m.type)).toEqual(["error", "pong"]);
  const error = answers[0] as Extract<ServerMessage, { type: "error" }>;
  expect(error.seq).toBeUndefined();
  return error;
}

async function post(proc: ServerProc, s: Session, body: string): Promise<{ status: number; body: { error?: { code: string; field?: string; retryable: boolean } } & Record<string, unknown> }> {
  const res = await fetch(`${proc.node.base}/v1/sessions/${s.sessionId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, never> };
}

async function snapshot(proc: ServerProc, s: Session): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${proc.node.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A whole turn on a WebSocket client: ack, then turn_start ... usage, turn_end completed, seqs consecutive. */
async function turnOverWs(client: TestClient, turn: string): Promise<void> {
  const afterSeq = logged(client.messages).at(-1)?.seq ?? 0;
  const start = client.messages.length;
  client.send({ type: "input", id: `input-${turn}`, text: "2 * 21" });
  await client.waitForTurnEnd(turn);
  expect(client.messages[start]).toEqual({ type: "ack", id: `input-${turn}`, turn });
  expectCompletedTurn(client.messages, turn, afterSeq);
}

/** A whole turn driven by POST and watched on the event stream. */
async function turnOverHttp(proc: ServerProc, s: Session, afterSeq: number): Promise<void> {
  const stream = await SseClient.open(SseClient.url(proc.node.base, s, `afterSeq=${afterSeq}`));
  const taken = await post(proc, s, JSON.stringify({ type: "input", text: "2 * 21" }));
  expect(taken.status).toBe(202);
  const turn = taken.body.turn as string;
  await stream.waitForTurnEnd(turn);
  expectCompletedTurn(stream.messages, turn, afterSeq);
  stream.close();
}

/** The cases every node must survive, over both transports; run once without Redis and once with it. */
function deepCases(label: string, start: () => Promise<ServerProc>): void {
  describe(label, () => {
    let proc: ServerProc;
    beforeAll(async () => {
      proc = await start();
    });
    afterAll(() => proc?.stop());

    it("4,500 levels in tools[].parameters over WebSocket: invalid_message at tools.0.parameters..., id echoed, the link stays; the node lives, the snapshot answers 200 and a turn completes", async () => {
      expect(DEEP_PARAMETERS.length).toBeGreaterThan(9000);
      const s = await proc.createSession();
      const client = await TestClient.connect(TestClient.sessionUrl(proc.node.wsBase, s));
      await client.next("session");
      const error = await refusal(client, DEEP_PARAMETERS, "p1");
      expect(error).toMatchObject({ type: "error", code: ErrorCode.InvalidMessage, id: "deep-1", retryable: false });
      expect(under(error.field, "tools.0.parameters"), `field ${error.field}`).toBe(true);
      proc.expectAlive();
      const snap = await snapshot(proc, s);
      expect(snap.status).toBe(200);
      expect(snap.body).toMatchObject({ config: { tools: [] } });
      await turnOverWs(client, "t1");
      proc.expectAlive();
      client.close();
    });

    it("4,500 levels in tool_result.output over WebSocket: invalid_message at output..., for no call and for a call that waits; the waiting turn then completes with a real result", async () => {
      const s = await proc.createSession();
      const client = await TestClient.connect(TestClient.sessionUrl(proc.node.wsBase, s));
      await client.next("session");
      const none = await refusal(client, deepOutput("call_none"), "p1");
      expect(none).toMatchObject({ code: ErrorCode.InvalidMessage, id: "deep-2", retryable: false });
      expect(under(none.field, "output"), `field ${none.field}`).toBe(true);

      // The demo agent calls a client tool the input names, and waits for its result.
      expect(await answersTo(client, JSON.stringify({ type: "configure", id: "c1", tools: [{ name: "lookup", parameters: { type: "object", properties: { text: { type: "string" } } } }] }), "p2")).toMatchObject([
        { type: "ack", id: "c1" },
        { type: "pong", id: "p2" },
      ]);
      client.send({ type: "input", id: "i1", text: "please lookup the answer" });
      const call = await client.next("tool", (m) => m.phase === "ready" && m.executor === "client");
      const waiting = await refusal(client, deepOutput(call.callId), "p3");
      expect(waiting).toMatchObject({ code: ErrorCode.InvalidMessage, id: "deep-2" });
      expect(under(waiting.field, "output"), `field ${waiting.field}`).toBe(true);
      proc.expectAlive();
      client.send({ type: "tool_result", callId: call.callId, output: { answer: 42 } });
      const end = await client.waitForTurnEnd(call.turn);
      expect(end.status).toBe("completed");
      expectCompletedTurn(client.messages, call.turn, 0);
      expect(client.messages.find((m) => m.type === "tool" && m.phase === "result" && m.callId === call.callId)).toMatchObject({ output: { answer: 42 }, isError: false });
      expect((await snapshot(proc, s)).status).toBe(200);
      await turnOverWs(client, "t2");
      client.close();
    });

    it("over POST /messages, then GET /v1/sessions/:id: 400 invalid_message at tools.0.parameters... and at output...; the snapshot answers 200 and a turn completes", async () => {
      const s = await proc.createSession();
      const parameters = await post(proc, s, DEEP_PARAMETERS);
      expect(parameters).toMatchObject({ status: 400, body: { error: { code: ErrorCode.InvalidMessage, retryable: false } } });
      expect(under(parameters.body.error?.field, "tools.0.parameters"), `field ${parameters.body.error?.field}`).toBe(true);
      const output = await post(proc, s, deepOutput("call_none"));
      expect(output).toMatchObject({ status: 400, body: { error: { code: ErrorCode.InvalidMessage } } });
      expect(under(output.body.error?.field, "output"), `field ${output.body.error?.field}`).toBe(true);
      proc.expectAlive();
      const snap = await snapshot(proc, s);
      expect(snap).toMatchObject({ status: 200, body: { sessionId: s.sessionId, lastSeq: 0, config: { tools: [] } } });
      await turnOverHttp(proc, s, 0);
      proc.expectAlive();
    });

    it("size caps: tools[].parameters above 16 KB as JSON is refused at tools.1.parameters, tool_result.output above 64 KB at output; under the caps both are taken", async () => {
      const s = await proc.createSession();
      const client = await TestClient.connect(TestClient.sessionUrl(proc.node.wsBase, s));
      await client.next("session");
      expect(await refusal(client, BIG_PARAMETERS, "p1")).toMatchObject({ code: ErrorCode.InvalidMessage, field: "tools.1.parameters", id: "big-1" });
      expect(await refusal(client, BIG_OUTPUT, "p2")).toMatchObject({ code: ErrorCode.InvalidMessage, field: "output", id: "big-2" });
      expect(await post(proc, s, BIG_PARAMETERS)).toMatchObject({ status: 400, body: { error: { code: ErrorCode.InvalidMessage, field: "tools.1.parameters" } } });
      expect(await post(proc, s, BIG_OUTPUT)).toMatchObject({ status: 400, body: { error: { code: ErrorCode.InvalidMessage, field: "output" } } });

      // Under the caps, and nested 20 levels: the schema takes them (the output then finds no call waiting).
      const fits = { type: "configure", id: "fit-1", tools: [{ name: "wide", parameters: { type: "object", description: "p".repeat(TOOL_PARAMETERS_MAX_CHARS / 2), deep: JSON.parse(nestedJson(20)) } }] };
      expect(await answersTo(client, JSON.stringify(fits), "p3")).toMatchObject([{ type: "ack", id: "fit-1" }, { type: "pong", id: "p3" }]);
      const fitOutput = { type: "tool_result", id: "fit-2", callId: "call_none", output: "o".repeat(TOOL_OUTPUT_MAX_CHARS / 2) };
      expect(await refusal(client, JSON.stringify(fitOutput), "p4")).toMatchObject({ code: ErrorCode.ToolCallNotFound, field: "callId", id: "fit-2" });
      const snap = await snapshot(proc, s);
      expect(snap.status).toBe(200);
      expect(snap.body).toMatchObject({ config: { tools: [{ name: "wide" }] } });
      proc.expectAlive();
      await turnOverWs(client, "t1");
      client.close();
    });
  });
}

deepCases("a node on its own", () => startServerProc("deep-alone", { AGENTWIRE_MAX_PAYLOAD_BYTES: MAX_PAYLOAD }));

// With Redis, taking the configure used to store the session state, and the store's JSON.stringify ended the process.
const withRedis = requireRedisOrSkip();
describe.runIf(withRedis)("with Redis", () => {
  let redis: RedisProc;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());
  deepCases("a node on REDIS_URL", () => startServerProc("deep-redis", { AGENTWIRE_MAX_PAYLOAD_BYTES: MAX_PAYLOAD, REDIS_URL: redis.url, AGENTWIRE_REDIS_PREFIX: "deep:" }));
});
