// An input whose acknowledgement was lost, sent again with its id, starts one turn: over a WebSocket dropped
// right after the send, and over POST retried whole (body id or Idempotency-Key).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage } from "@agentwire/protocol";
import { RecordingDemoAgent } from "../helpers/agents.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { postMessage } from "../helpers/sse-client.js";
import { TestClient, logged } from "../helpers/ws-client.js";

const firstSteps = (agent: RecordingDemoAgent, sessionId: string) => agent.requests.filter((r) => r.sessionId === sessionId && r.step === 0).length;
const turnStarts = (ms: ServerMessage[]) => logged(ms).filter((e) => e.type === "turn_start");

describe("exactly-once input against a real server", () => {
  const agent = new RecordingDemoAgent({ tokensPerSecond: 0, replyWords: 3 });
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { agent });
  });
  afterAll(() => server.close());

  it("WebSocket: dropped before the ack was read, the resend on a new connection is acked with the same turn", async () => {
    const s = await server.createSession();
    const first = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await first.next("session");
    first.send({ type: "input", id: "m1", text: "what is 5 * 5" });
    // The server took it (its turn started); the client drops as if the ack never reached it.
    await first.next("turn_start");
    first.ws.terminate();

    const second = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s, 0));
    second.send({ type: "input", id: "m1", text: "what is 5 * 5" });
    await second.next("ack");
    await second.waitForTurnEnd("t1");
    expect(second.messages.filter((m) => m.type === "ack")).toEqual([{ type: "ack", id: "m1", turn: "t1" }]);
    expect(turnStarts(second.messages)).toEqual([{ type: "turn_start", seq: 1, turn: "t1", input: "what is 5 * 5", id: "m1" }]);
    expect(second.messages.filter((m) => m.type === "error")).toEqual([]);
    expect(firstSteps(agent, s.sessionId)).toBe(1);
    second.close();
  });

  it("HTTP: a POST retried with the same body id, or the same Idempotency-Key, answers 202 with the first turn", async () => {
    const s = await server.createSession();
    const stream = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    const byId = { type: "input", id: "job-1", text: "what is 2 + 3" };
    const answers = [await postMessage(server.base, s, byId), await postMessage(server.base, s, byId)];
    for (const a of answers) {
      expect([a.status, a.body, a.headers.get("location")]).toEqual([202, { ok: true, turn: "t1", id: "job-1" }, "turns/t1"]);
    }
    await stream.waitForTurnEnd("t1");

    const keyed = async () => {
      const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json", "idempotency-key": "key-2" },
        body: JSON.stringify({ type: "input", text: "what is 3 + 4" }),
      });
      return { status: res.status, body: await res.json() };
    };
    expect(await keyed()).toEqual({ status: 202, body: { ok: true, turn: "t2", id: "key-2" } });
    await stream.waitForTurnEnd("t2");
    expect(await keyed()).toEqual({ status: 202, body: { ok: true, turn: "t2", id: "key-2" } });
    expect(turnStarts(stream.messages).map((e) => [e.turn, e.id])).toEqual([["t1", "job-1"], ["t2", "key-2"]]);
    expect(firstSteps(agent, s.sessionId)).toBe(2);
    stream.close();
  });

  it("HTTP: an Idempotency-Key that disagrees with the body id, or is too long, is refused on its field", async () => {
    const s = await server.createSession();
    const send = async (key: string, body: unknown) => {
      const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify(body),
      });
      return { status: res.status, error: ((await res.json()) as { error: { code: string; field?: string } }).error };
    };
    expect(await send("a", { type: "input", id: "b", text: "x", final: false })).toMatchObject({ status: 400, error: { code: ErrorCode.InvalidMessage, field: "idempotency-key" } });
    expect(await send("k".repeat(129), { type: "input", text: "x", final: false })).toMatchObject({ status: 400, error: { code: ErrorCode.InvalidMessage, field: "idempotency-key" } });
    const snapshot = (await (await fetch(`${server.base}/v1/sessions/${s.sessionId}?token=${s.token}`)).json()) as { pendingInput: string };
    expect(snapshot.pendingInput).toBe("");
  });
});
