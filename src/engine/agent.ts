// The Agent contract: one model step, streamed into a sink. The engine runs the tool loop around it.
import type { ErrorCode, ToolDeclaration } from "@agentwire/protocol";
import type { Context } from "@opentelemetry/api";

/** The OpenTelemetry tracer agentwire's spans come from (a no-op unless the application registers an SDK). */
export const TRACER_NAME = "agentwire";

/** Provider-neutral conversation history. Adapters render it into their provider's format. */
export type HistoryMessage =
  | { role: "user"; text: string }
  | { role: "assistant"; text: string; toolCalls?: ToolCall[] }
  | { role: "tool"; callId: string; name: string; output: string; isError: boolean };

export interface ToolCall {
  id: string;
  name: string;
  /** Parsed JSON arguments. */
  args: unknown;
}

export interface StepRequest {
  sessionId: string;
  turnId: string;
  /** Model name; agents may ignore it (the demo agent does). */
  model: string | undefined;
  system: string | undefined;
  /** History including the current turn's user input and any tool results so far. */
  history: readonly HistoryMessage[];
  /** Every tool the model may call: server-registered and client-declared. */
  tools: readonly ToolDeclaration[];
  /** 0 for the first step of a turn, then 1, 2... after each round of tool results. */
  step: number;
  /**
   * The OpenTelemetry context holding the turn's `agentwire.turn` span: parent an upstream
   * request's span on it and inject its `traceparent` (the provider adapters do). Without an SDK it
   * holds a non-recording span and the default propagator injects nothing.
   */
  traceContext?: Context;
}

/** Where an agent streams a step's output. Calls after the turn ended are ignored. */
export interface StepSink {
  /** A text delta. */
  text(delta: string): void;
  progress(stage: string, message?: string, fraction?: number): void;
  /** A tool call begins; its name is known. */
  toolCallStart(callId: string, name: string): void;
  /** A fragment of the call's JSON arguments. */
  toolCallDelta(callId: string, argsDelta: string): void;
  /** The step's token counts so far (cumulative for this step, not deltas). */
  usage(inputTokens: number, outputTokens: number): void;
  /** The agent retries its upstream request (before its backoff wait): counted in the turn's log line. Optional. */
  retried?(attempt: number, code: string): void;
}

export type StepFinish =
  /** The model gave its final answer. */
  | "stop"
  /** The model wants tool results before it goes on (see `toolCalls`). */
  | "tool_calls"
  /** The output token limit was reached. */
  | "max_tokens"
  | "content_filter"
  /** The upstream stream ended without its end marker. */
  | "incomplete";

export interface StepResult {
  finish: StepFinish;
  /** Complete calls with parsed arguments; required when finish is `tool_calls`. */
  toolCalls: ToolCall[];
}

/**
 * An agent runs one model step at a time. Implement `step` and return how it finished; the
 * engine executes tool calls, appends results to history, and calls `step` again.
 * Must stop promptly when `signal` aborts (reject or return; output after that is ignored).
 */
export interface Agent {
  readonly name: string;
  step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult>;
}

/** A failure the agent reports with a stable code; anything else thrown becomes `upstream_error`. */
export class AgentError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryable = false,
    readonly retryAfterMs?: number,
    /** For operators' logs only, never shown to clients: e.g. the start of what the upstream sent. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = "AgentError";
  }
}

/** A server-side tool: declared to the model, executed by the server. */
export interface ServerTool {
  declaration: ToolDeclaration;
  run(args: unknown, signal: AbortSignal): Promise<unknown>;
}
