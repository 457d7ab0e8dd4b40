import { describe, expect, it } from "vitest";
import { ErrorCode, JSON_MAX_DEPTH, TOOL_OUTPUT_MAX_CHARS, TOOL_PARAMETERS_MAX_CHARS, parseClientFrame, tooDeepPath } from "@agentwire/protocol";
import { parseToolArgs } from "../../src/agents/step-output.js";

const nested = (levels: number, leaf = "0") => "[".repeat(levels) + leaf + "]".repeat(levels);

describe("bounded JSON in client messages", () => {
  it("4,500 levels in tools[].parameters: invalid_message naming the path, id echoed", () => {
    const r = parseClientFrame(`{"type":"configure","id":"c1","tools":[{"name":"deep","parameters":{"a":${nested(4500)}}}]}`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(ErrorCode.InvalidMessage);
    expect(r.error.id).toBe("c1");
    // The message is depth 1, tools 2, the tool 3, parameters 4, "a" 5: depth 33 is 28 arrays inside "a".
    expect(r.error.field).toBe(["tools", "0", "parameters", "a", ...Array(JSON_MAX_DEPTH - 4).fill("0")].join("."));
  });

  it("exactly the maximum depth passes; one more is refused", () => {
    // The message object is depth 1, so `output` may hold JSON_MAX_DEPTH - 1 levels.
    const ok = parseClientFrame(`{"type":"tool_result","callId":"c","output":${nested(JSON_MAX_DEPTH - 1)}}`);
    expect(ok.ok).toBe(true);
    const deep = parseClientFrame(`{"type":"tool_result","id":"r","callId":"c","output":${nested(JSON_MAX_DEPTH)}}`);
    expect(deep).toMatchObject({ ok: false, error: { code: ErrorCode.InvalidMessage, id: "r" } });
    if (!deep.ok) expect(deep.error.field?.startsWith("output")).toBe(true);
  });

  it("depth in an unknown field is refused before the schema looks at it", () => {
    const r = parseClientFrame(`{"type":"ping","id":"p","junk":${nested(100)}}`);
    expect(r).toMatchObject({ ok: false, error: { code: ErrorCode.InvalidMessage, id: "p" } });
    if (!r.ok) expect(r.error.field?.split(".")[0]).toBe("junk");
  });

  it("size caps on free-form fields name the field", () => {
    const params = { type: "object", description: "x".repeat(TOOL_PARAMETERS_MAX_CHARS) };
    const tools = parseClientFrame(JSON.stringify({ type: "configure", tools: [{ name: "a" }, { name: "b", parameters: params }] }));
    expect(tools).toMatchObject({ ok: false, error: { code: ErrorCode.InvalidMessage, field: "tools.1.parameters" } });
    const output = parseClientFrame(JSON.stringify({ type: "tool_result", callId: "c", output: "y".repeat(TOOL_OUTPUT_MAX_CHARS) }));
    expect(output).toMatchObject({ ok: false, error: { code: ErrorCode.InvalidMessage, field: "output" } });
    const fits = parseClientFrame(JSON.stringify({ type: "tool_result", callId: "c", output: "y".repeat(TOOL_OUTPUT_MAX_CHARS - 2) }));
    expect(fits.ok).toBe(true);
  });

  it("tooDeepPath reports the first offender in key order, iteratively", () => {
    expect(tooDeepPath({ a: 1, b: [[1]] }, 2)).toEqual(["b", 0]);
    expect(tooDeepPath({ a: [[1]], b: [[[1]]] }, 2)).toEqual(["a", 0]);
    expect(tooDeepPath(JSON.parse(nested(200_000)), JSON_MAX_DEPTH)?.length).toBe(JSON_MAX_DEPTH);
    expect(tooDeepPath("flat", 1)).toBeNull();
  });

  it("upstream tool arguments nested too deeply stay raw text, never a value that cannot be serialized", () => {
    const raw = `{"a":${nested(5000)}}`;
    expect(parseToolArgs(raw)).toBe(raw);
    expect(parseToolArgs('{"a":[1]}')).toEqual({ a: [1] });
    expect(parseToolArgs("", JSON.parse(raw))).toBe("(arguments nested too deeply)");
  });
});
