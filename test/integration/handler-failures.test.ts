// A bug that slips past the input bounds costs one request or one link, never the process.
import { describe, expect, it } from "vitest";
import { CloseCode, ErrorCode } from "@agentwire/protocol";
import type { Session } from "../../src/engine/index.js";
import { startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

describe("handler failures", () => {
  it("an HTTP handler that throws answers 500 internal_error; the next request is served", async () => {
    const server = await startTestServer();
    const s = await server.createSession();
    const snapshot = server.engine.snapshot.bind(server.engine);
    server.engine.snapshot = () => {
      throw new RangeError("Maximum call stack size exceeded");
    };
    const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string; retryable: boolean } }).error).toMatchObject({ code: ErrorCode.Internal, retryable: true });
    server.engine.snapshot = snapshot;
    const again = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(again.status).toBe(200);
    await server.close();
  });

  it("a body that cannot be serialized answers 500 instead of throwing", async () => {
    const server = await startTestServer();
    const s = await server.createSession();
    const session = server.engine.get(s.sessionId) as Session;
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    session.snapshot = () => cyclic as unknown as ReturnType<Session["snapshot"]>;
    const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.Internal);
    expect((await fetch(`${server.base}/v1/sessions`, { method: "POST" })).status).toBe(201);
    await server.close();
  });

  it("a client message whose handling throws closes that link with 1011; other links and sessions go on", async () => {
    const server = await startTestServer();
    const s = await server.createSession();
    const other = await server.createSession();
    const bystander = await TestClient.connect(TestClient.sessionUrl(server.wsBase, other));
    await bystander.next("session");
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await client.next("session");
    const session = server.engine.get(s.sessionId) as Session;
    session.submit = () => {
      throw new TypeError("a bug");
    };
    client.send({ type: "ping", id: "p1" });
    expect(await client.waitClosed()).toBe(CloseCode.InternalError);
    bystander.send({ type: "input", text: "2 + 2" });
    expect(await bystander.waitForTurnEnd()).toMatchObject({ status: "completed" });
    bystander.close();
    await server.close();
  });
});
