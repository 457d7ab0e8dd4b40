// Bookkeeping both provider agents share while streaming a step: usage estimates and tool call assembly.
import { JSON_MAX_DEPTH, tooDeepPath } from "@agentwire/protocol";
import type { StepFinish, StepSink, ToolCall } from "../engine/agent.js";

/**
 * Reports usage through the sink as the stream goes. Until the provider's own numbers arrive,
 * output tokens are estimated as one per streamed text or argument fragment (providers send about
 * one token per fragment), so a step cut short by cancel still has a usable partial count.
 */
export class UsageMeter {
  private input = 0;
  private output = 0;
  private fragments = 0;
  private reported: [number, number] | undefined;

  constructor(private readonly sink: StepSink) {}

  /** A text or argument fragment went out. */
  fragment(): void {
    this.fragments++;
    if (this.fragments > this.output) {
      this.output = this.fragments;
      this.report();
    }
  }

  /** Numbers from the provider, already cumulative for the step. */
  actual(input: number, output: number): void {
    this.input = input;
    this.output = output;
    this.report();
  }

  /** An input estimate to use until the provider tells (OpenAI reports usage only at the end). */
  estimateInput(input: number): void {
    this.input = input;
  }

  private report(): void {
    if (this.reported?.[0] === this.input && this.reported[1] === this.output) return;
    this.reported = [this.input, this.output];
    this.sink.usage(this.input, this.output);
  }
}

interface PendingCall {
  id: string;
  name: string;
  args: string;
  /** Arguments given whole at the start (Anthropic's `input`), used when no fragment follows. */
  initialArgs: unknown;
}

/** Tool calls streamed as fragments keyed by the provider's index, several possibly at once. */
export class ToolCallAssembler {
  private readonly calls = new Map<number, PendingCall>();

  constructor(private readonly sink: StepSink) {}

  has(index: number): boolean {
    return this.calls.has(index);
  }

  get size(): number {
    return this.calls.size;
  }

  start(index: number, id: string, name: string, initialArgs?: unknown): void {
    this.calls.set(index, { id, name, args: "", initialArgs });
    this.sink.toolCallStart(id, name);
  }

  /** Appends an argument fragment; false when no call has this index. */
  append(index: number, fragment: string): boolean {
    const call = this.calls.get(index);
    if (!call) return false;
    call.args += fragment;
    this.sink.toolCallDelta(call.id, fragment);
    return true;
  }

  /** The calls in index order, arguments parsed (see `parseToolArgs`). */
  result(): ToolCall[] {
    return [...this.calls.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, c]) => ({ id: c.id, name: c.name, args: parseToolArgs(c.args, c.initialArgs) }));
  }
}

/**
 * Parses streamed arguments. Empty means no arguments: `{}` (or the arguments given at the start).
 * Invalid JSON is kept as the raw string: the tool then fails validation and the model sees the
 * error in the tool result and can correct itself, which beats silently running it with `{}`.
 */
export function parseToolArgs(raw: string, initial?: unknown): unknown {
  if (raw.trim() === "") return tooDeepPath(initial, JSON_MAX_DEPTH) ? "(arguments nested too deeply)" : (initial ?? {});
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return raw;
  }
  // Arguments nested past the protocol's depth could not be serialized safely everywhere they go
  // (events, history, stored state): they stay the raw text, which the tool then refuses.
  return tooDeepPath(parsed, JSON_MAX_DEPTH) ? raw : parsed;
}

/**
 * The step's finish, made consistent with its tool calls: calls are returned only with
 * `tool_calls` (a call cut off by the token limit or by a dropped stream must not run), and a
 * provider that says "stop" while calling tools still gets its tools run.
 */
export function settleFinish(
  finish: StepFinish | undefined,
  ended: boolean,
  calls: ToolCallAssembler,
): { finish: StepFinish; toolCalls: ToolCall[] } {
  if (!ended) return { finish: "incomplete", toolCalls: [] };
  const resolved = finish ?? (calls.size > 0 ? "tool_calls" : "stop");
  if ((resolved === "tool_calls" || resolved === "stop") && calls.size > 0) {
    return { finish: "tool_calls", toolCalls: calls.result() };
  }
  // "tool_calls" with no call at all would stall the loop: treat it as a final answer.
  return { finish: resolved === "tool_calls" ? "stop" : resolved, toolCalls: [] };
}

/** Narrows parsed JSON to an object. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function numberOr(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}
