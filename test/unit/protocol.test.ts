import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CloseCode, ERRORS, ErrorCode, ServerMessage, parseClientFrame, protocolJsonSchema, shouldReconnect } from "@agentwire/protocol";

describe("protocol", () => {
  it("the checked-in JSON Schema matches the zod schemas (run `npm run schema` when this fails)", () => {
    const onDisk = JSON.parse(readFileSync(new URL("../../protocol/schema.json", import.meta.url), "utf8"));
    expect(onDisk).toEqual(protocolJsonSchema());
  });

  it("parses every client message type and applies defaults", () => {
    expect(parseClientFrame('{"type":"input","text":"hi"}')).toEqual({ ok: true, message: { type: "input", text: "hi", final: true, interrupt: false } });
    expect(parseClientFrame('{"type":"cancel","id":"x"}')).toEqual({ ok: true, message: { type: "cancel", id: "x" } });
    expect(parseClientFrame('{"type":"resume","afterSeq":4}')).toEqual({ ok: true, message: { type: "resume", afterSeq: 4 } });
    expect(parseClientFrame('{"type":"ping"}')).toEqual({ ok: true, message: { type: "ping" } });
    expect(parseClientFrame('{"type":"tool_result","callId":"c","output":null}')).toEqual({ ok: true, message: { type: "tool_result", callId: "c", output: null, isError: false } });
    const configure = parseClientFrame('{"type":"configure","tools":[{"name":"t"}]}');
    expect(configure).toEqual({ ok: true, message: { type: "configure", tools: [{ name: "t", description: "", parameters: { type: "object", properties: {} } }] } });
  });

  it("names the failing field and echoes the id", () => {
    expect(parseClientFrame("nope")).toEqual({ ok: false, error: { code: "invalid_json", message: expect.any(String) } });
    expect(parseClientFrame('{"type":"input","id":"q","text":5}')).toEqual({ ok: false, error: { code: "invalid_message", field: "text", id: "q", message: expect.any(String) } });
    expect(parseClientFrame('{"type":"nope","id":"q"}')).toMatchObject({ ok: false, error: { code: "unknown_type", field: "type", id: "q" } });
    expect(parseClientFrame('{"type":"ping","extra":1}')).toMatchObject({ ok: false, error: { code: "invalid_message", field: "extra" } });
    expect(parseClientFrame("null")).toMatchObject({ ok: false, error: { code: "invalid_message" } });
  });

  it("server messages validate against their own schema", () => {
    const samples = [
      { type: "token", seq: 41, turn: "t3", text: "lo" },
      { type: "turn_end", seq: 50, turn: "t3", status: "completed", reason: "stop" },
      { type: "session", sessionId: "s", protocol: 1, lastSeq: 0, resumed: false, recovered: true, activeTurn: null, heartbeatMs: 1000 },
      { type: "error", code: "invalid_json", message: "m", retryable: false },
    ];
    for (const s of samples) expect(ServerMessage.parse(s)).toEqual(s);
  });

  it("codes: stable values and the reconnect ranges", () => {
    expect(ErrorCode.TurnActive).toBe("turn_active");
    expect(new Set(Object.values(ErrorCode)).size).toBe(Object.values(ErrorCode).length);
    expect(shouldReconnect(CloseCode.SlowConsumer)).toBe(true);
    expect(shouldReconnect(CloseCode.ServerDraining)).toBe(true);
    expect(shouldReconnect(CloseCode.GoingAway)).toBe(true);
    expect(shouldReconnect(1006)).toBe(true);
    expect(shouldReconnect(CloseCode.Unauthorized)).toBe(false);
    expect(shouldReconnect(CloseCode.SessionNotFound)).toBe(false);
    expect(shouldReconnect(CloseCode.SessionEnded)).toBe(false);
    expect(shouldReconnect(CloseCode.Normal)).toBe(false);
  });
});

describe("the error table", () => {
  it("names every code once, with the statuses and close codes the transports answer with", async () => {
    expect(Object.keys(ERRORS).sort()).toEqual(Object.values(ErrorCode).sort());
    expect([ERRORS.invalid_message.status, ERRORS.input_too_large.status, ERRORS.turn_active.status, ERRORS.rate_limited.status, ERRORS.overloaded.status]).toEqual([400, 413, 409, 429, 503]);
    expect([ERRORS.forbidden.close, ERRORS.session_not_found.close, ERRORS.owner_unavailable.close]).toEqual([CloseCode.Unauthorized, CloseCode.SessionNotFound, CloseCode.OwnerUnavailable]);
    for (const info of Object.values(ERRORS)) if (info.close !== undefined) expect(Object.values(CloseCode)).toContain(info.close);
  });
});
