// Every HTTP body a real server answers with is exactly what @agentwire/protocol's schemas describe: nothing
// missing, nothing extra (a parsed body must equal the raw one, since the schemas drop unknown keys).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSessionResponse, ErrorResponse, MessageAccepted, SessionSnapshot, TurnView } from "@agentwire/protocol";
import type { z } from "zod";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { postMessage } from "../helpers/sse-client.js";
import { TestClient } from "../helpers/ws-client.js";

function exactly<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.parse(body);
  expect(parsed).toEqual(body);
  return parsed;
}

describe("HTTP bodies against the protocol's schemas", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: 3 });
  });
  afterAll(() => server.close());

  it("create, message accepted, turn view and snapshot after a turn with a server tool", async () => {
    const res = await fetch(`${server.base}/v1/sessions`, { method: "POST" });
    expect(res.status).toBe(201);
    const created = exactly(CreateSessionResponse, await res.json());
    expect(created.urls.snapshot).toBe(`/v1/sessions/${created.sessionId}`);

    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, created));
    await client.next("session");
    const configured = await postMessage(server.base, created, { type: "configure", id: "c1", system: "be brief", tools: [{ name: "lookup", description: "finds things" }] });
    expect(configured.status).toBe(202);
    expect(exactly(MessageAccepted, configured.body)).toEqual({ ok: true, id: "c1" });
    const posted = await postMessage(server.base, created, { type: "input", text: "what is 6 * 7" });
    expect(exactly(MessageAccepted, posted.body)).toEqual({ ok: true, turn: "t1" });
    await client.waitForTurnEnd();
    client.close();

    const auth = { authorization: `Bearer ${created.token}` };
    const view = exactly(TurnView, await (await fetch(`${server.base}/v1/sessions/${created.sessionId}/turns/t1`, { headers: auth })).json());
    expect(view).toMatchObject({ turn: "t1", status: "completed", reason: "stop", input: "what is 6 * 7" });

    const snapshot = exactly(SessionSnapshot, await (await fetch(`${server.base}${created.urls.snapshot}`, { headers: auth })).json());
    expect(snapshot.history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"]);
    expect(snapshot.config).toEqual({ system: "be brief", tools: [{ name: "lookup", description: "finds things", parameters: { type: "object", properties: {} } }] });
    expect(snapshot.turns.map((t) => [t.id, t.status])).toEqual([["t1", "completed"]]);
    expect(snapshot.lastSeq).toBe(view.lastSeq);
  });

  it("error bodies: unknown session, wrong token, a bad message, an unknown turn", async () => {
    const s = await server.createSession();
    const unknown = await fetch(`${server.base}/v1/sessions/s_nope`, { headers: { authorization: `Bearer ${s.token}` } });
    expect([unknown.status, exactly(ErrorResponse, await unknown.json()).error.code]).toEqual([404, "session_not_found"]);
    const wrong = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: "Bearer wrong" } });
    expect([wrong.status, exactly(ErrorResponse, await wrong.json()).error.code]).toEqual([403, "forbidden"]);
    const bad = await postMessage(server.base, s, { type: "input", text: 5 });
    expect(bad.status).toBe(400);
    expect(exactly(ErrorResponse, bad.body).error).toMatchObject({ code: "invalid_message", field: "text" });
    const turn = await fetch(`${server.base}/v1/sessions/${s.sessionId}/turns/t9`, { headers: { authorization: `Bearer ${s.token}` } });
    expect([turn.status, exactly(ErrorResponse, await turn.json()).error.code]).toEqual([404, "turn_not_found"]);
  });
});
