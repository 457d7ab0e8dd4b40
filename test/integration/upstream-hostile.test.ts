// Hostile upstreams through the real server: a 10 MB token, a 60 MB line, endless keep-alives, invalid JSON.
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { MAX_DELTA_CHARS, type Session } from "../../src/engine/index.js";
import type { RunningServer } from "../../src/server.js";
import { type Handler, openai } from "../helpers/fake-provider.js";
import { providerHarness } from "../helpers/provider-e2e.js";
import { logged, turnText } from "../helpers/ws-client.js";

const KEY = "sk-hostile-0123456789";
const MIB = 1024 * 1024;
let extra: Record<string, number> = {};
const setup = providerHarness((url, apiKey) => ({ AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: `${url}/v1`, OPENAI_API_KEY: apiKey, ...extra }), KEY);

/** Writes `total` bytes of `unit` in 64 KB writes, respecting backpressure, until done or the client goes away. */
function flood(head: string, unit: string, total: number, tail = ""): Handler {
  return (res: ServerResponse) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(head);
    const piece = unit.repeat(Math.ceil((64 * 1024) / unit.length));
    let sent = 0;
    const pump = (): void => {
      while (!res.destroyed && sent < total) {
        sent += piece.length;
        if (!res.write(piece)) {
          res.once("drain", pump);
          return;
        }
      }
      if (!res.destroyed) res.end(tail);
    };
    pump();
  };
}

/** What the session still holds once its turn is over: nothing beyond its budgets. */
function retained(server: RunningServer, sessionId: string) {
  const session = server.engine.get(sessionId) as Session;
  return { running: session.activeTurnId, logBytes: session.log.bytes, turnText: session.turn("t1")?.text.length ?? -1 };
}

describe("hostile upstreams", () => {
  it("one 10 MB token over the event limit: failed/upstream_error, the upstream connection closed, nothing buffered", async () => {
    extra = {};
    const token = `data: ${JSON.stringify(openai.text("x".repeat(10 * MIB)))}\n\n`;
    const { fake, ws, server, session } = await setup([flood("", token, token.length)]);
    ws.send({ type: "input", text: "go" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: ErrorCode.UpstreamError });
    expect(logged(ws.messages).find((m) => m.type === "error")).toMatchObject({ code: ErrorCode.UpstreamError });
    await (await fake.request(0)).socketClosed;
    expect(retained(server, session.sessionId)).toMatchObject({ running: null, turnText: 0 });
    expect(retained(server, session.sessionId).logBytes).toBeLessThan(4096);
  });

  it("a 10 MB token within a raised event limit: frames of at most 4096 characters, cut at the output limit", async () => {
    extra = { AGENTWIRE_UPSTREAM_MAX_EVENT_BYTES: 16 * MIB, AGENTWIRE_TURN_MAX_OUTPUT_CHARS: MIB };
    const body = `data: ${JSON.stringify(openai.text("y".repeat(10 * MIB)))}\n\ndata: [DONE]\n\n`;
    const { ws, server, session } = await setup([flood("", body, body.length)]);
    ws.send({ type: "input", text: "go" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "incomplete", reason: "output_limit" });
    const tokens = logged(ws.messages).filter((m) => m.type === "token") as { text: string }[];
    expect(tokens.length).toBe(MIB / MAX_DELTA_CHARS);
    expect(tokens.every((t) => t.text.length === MAX_DELTA_CHARS)).toBe(true);
    expect(turnText(ws.messages, "t1")).toBe("y".repeat(MIB));
    const events = logged(ws.messages);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const held = retained(server, session.sessionId);
    expect(held).toMatchObject({ running: null, turnText: MIB });
    expect(held.logBytes).toBeLessThanOrEqual(MIB);
  });

  it("a 60 MB line without a newline is not buffered whole: failed/upstream_error once it passes the event limit", async () => {
    extra = {};
    const { fake, ws, server, session } = await setup([flood("data: ", "z", 60 * MIB)]);
    ws.send({ type: "input", text: "go" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: ErrorCode.UpstreamError });
    await (await fake.request(0)).socketClosed;
    expect(retained(server, session.sessionId)).toMatchObject({ running: null, turnText: 0 });
  });

  it("endless keep-alive comments: the turn deadline ends it failed/upstream_timeout and aborts the request", async () => {
    extra = { AGENTWIRE_TURN_TIMEOUT_MS: 1000 };
    const keepAlive: Handler = (res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify(openai.text("hello"))}\n\n`);
      const timer = setInterval(() => res.write(": keep-alive\n\n"), 50);
      res.on("close", () => clearInterval(timer));
    };
    const { fake, ws } = await setup([keepAlive]);
    ws.send({ type: "input", text: "go" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: ErrorCode.UpstreamTimeout });
    expect(turnText(ws.messages, "t1")).toBe("hello");
    const kinds = logged(ws.messages).map((m) => m.type);
    expect(kinds).toEqual(["turn_start", "token", "error", "usage", "turn_end"]);
    await (await fake.request(0)).socketClosed;
  });

  it("invalid JSON from the upstream: a typed error that carries none of the upstream's text", async () => {
    extra = {};
    const { ws, logs } = await setup([flood("", "data: {not json, SECRET-UPSTREAM-BODY}\n\n", 1)]);
    ws.send({ type: "input", text: "go" });
    const end = await ws.waitForTurnEnd();
    expect(end).toMatchObject({ status: "failed", reason: ErrorCode.UpstreamError });
    const error = logged(ws.messages).find((m) => m.type === "error") as { code: string; message: string };
    expect(error.code).toBe(ErrorCode.UpstreamError);
    expect(JSON.stringify(ws.messages).includes("SECRET-UPSTREAM-BODY")).toBe(false);
    // Operators still see what came back, in the server's log.
    expect(logs.some((l) => l.includes("SECRET-UPSTREAM-BODY"))).toBe(true);
  });
});
