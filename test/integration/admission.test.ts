// One admission path for both stream transports: the connection cap counts WebSockets and SSE together; one resume-position parser.
import { describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { startTestServer } from "../helpers/server.js";
import { RawSseConnection } from "../helpers/sse-raw.js";
import { TestClient } from "../helpers/ws-client.js";

/** The HTTP status and error body of a refused WebSocket upgrade. */
async function refusedUpgrade(url: string): Promise<{ status: number; code: string; field?: string }> {
  const err = (await TestClient.connect(url).then(
    () => null,
    (e: unknown) => e,
  )) as { status: number; res: NodeJS.ReadableStream } | null;
  if (!err) throw new Error("the upgrade was accepted");
  let body = "";
  for await (const chunk of err.res) body += String(chunk);
  const { error } = JSON.parse(body) as { error: { code: string; field?: string } };
  return { status: err.status, code: error.code, field: error.field };
}

describe("admission of stream links", () => {
  it("AGENTWIRE_MAX_CONNECTIONS=1: an open SSE stream refuses a WebSocket, and an open WebSocket refuses a stream", async () => {
    const server = await startTestServer({ AGENTWIRE_MAX_CONNECTIONS: 1 });
    const s = await server.createSession();
    const sse = await RawSseConnection.open(server.port, `/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    await sse.waitUntil(() => sse.chunks.length >= 1, "the stream head");
    expect(await refusedUpgrade(TestClient.sessionUrl(server.wsBase, s))).toEqual({ status: 503, code: ErrorCode.Overloaded, field: undefined });
    sse.destroy();
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (server.engine.get(s.sessionId)?.attachments.length === 0) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    const ws = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
    await ws.next("session");
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    expect(metrics.match(/^agentwire_(websockets|sse_streams|lagging_links) \d+$/gm)).toEqual(["agentwire_websockets 1", "agentwire_sse_streams 0", "agentwire_lagging_links 0"]);
    const refused = await fetch(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}`);
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.Overloaded);
    ws.close();
    await server.close();
  });

  it("afterSeq is read the same way on both: decimal digits only", async () => {
    const server = await startTestServer();
    const s = await server.createSession();
    for (const bad of ["0x10", "1e3", "-1", "1.5", "9007199254740993"]) {
      const url = `${server.wsBase}/v1/sessions/${s.sessionId}/ws?token=${s.token}&afterSeq=${encodeURIComponent(bad)}`;
      expect(await refusedUpgrade(url)).toEqual({ status: 400, code: ErrorCode.InvalidMessage, field: "afterSeq" });
      const res = await fetch(`${server.base}/v1/sessions/${s.sessionId}/events?token=${s.token}&afterSeq=${encodeURIComponent(bad)}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { field: string } }).error.field).toBe("afterSeq");
    }
    const ok = await TestClient.connect(`${server.wsBase}/v1/sessions/${s.sessionId}/ws?token=${s.token}&afterSeq=0`);
    expect(await ok.next("session")).toMatchObject({ resumed: true, recovered: true });
    ok.close();
    await server.close();
  });
});
