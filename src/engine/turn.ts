// One turn: runs agent steps and tools until a final answer, and ends with exactly one turn_end.
import { ErrorCode, type LoggedEventInput, type ToolDeclaration, type TurnStatus } from "@agentwire/protocol";
import { type Context, ROOT_CONTEXT, type Span, SpanStatusCode, context as otelContext, trace } from "@opentelemetry/api";
import { type Agent, AgentError, type HistoryMessage, type StepResult, type StepSink, type ToolCall, TRACER_NAME } from "./agent.js";
import { TextArena } from "./text-arena.js";
import type { ToolRegistry } from "./tools.js";
import type { TurnReport } from "./telemetry.js";

export interface TurnRecord {
  id: string;
  input: string;
  /** `queued` while it waits in the node's admission queue (its turn_start is out, the upstream not called). */
  status: "queued" | "running" | TurnStatus;
  reason?: string;
  /** Text streamed so far, all steps. */
  text: string;
  inputTokens: number;
  outputTokens: number;
  startedAt: number;
  endedAt?: number;
  /** While queued: turns ahead of it. */
  position?: number;
}

export interface TurnDeps {
  sessionId: string;
  /** The session's principal: a span attribute of the turn's trace (never a metric label). */
  identity?: string;
  /** The client's id of the input that started the turn, logged in `turn_start`. */
  messageId?: string;
  agent: Agent;
  tools: ToolRegistry;
  /** The only server tools this session's principal may use; absent: all. */
  allowedTools?: ReadonlySet<string>;
  model: string | undefined;
  system: string | undefined;
  clientTools: readonly ToolDeclaration[];
  history: HistoryMessage[];
  maxSteps: number;
  clientToolTimeoutMs: number;
  /** Text characters the turn may stream; past it the turn ends `incomplete` with `output_limit`. */
  maxOutputChars: number;
  /** Characters of one tool call's arguments; past it the turn fails with `upstream_error`. */
  maxToolArgsChars: number;
  /** The turn's whole deadline (ms): past it, it fails with `upstream_timeout` and the upstream request is aborted. */
  timeoutMs: number;
  emit(event: LoggedEventInput): void;
  emitToken(turn: string, text: string): void;
  onEnd(turn: Turn): void;
  /** A cancel reached a running agent step: the ms from the cancel until that step settled. */
  cancelSettled?: (ms: number) => void;
  log?: (level: "warn" | "error", obj: object, msg: string) => void;
}

interface PendingClientCall {
  resolve(result: { output: unknown; isError: boolean; code?: string }): void;
}

export class Turn {
  readonly record: TurnRecord;
  private readonly controller = new AbortController();
  private ended = false;
  private readonly pendingClientCalls = new Map<string, PendingClientCall>();
  /** Usage of finished steps, plus the latest cumulative figures of the running step. */
  private doneIn = 0;
  private doneOut = 0;
  private stepIn = 0;
  private stepOut = 0;
  /** Every text delta of the turn, joined in chunks (not one retained string per token); read rarely. */
  private readonly texts = new TextArena();
  /** Where the running step's text starts in `texts`. */
  private stepStart = 0;
  private deadline: NodeJS.Timeout | null = null;
  /** When the agent started (0: never ran, e.g. cancelled while queued). */
  runStartedAt = 0;
  /** When the first text delta came (0: none yet). */
  private firstTextAt = 0;
  private steps = 0;
  private toolCalls = 0;
  /** Upstream retries the agent reported through its sink. */
  private retries = 0;
  /** Whether an agent step is in flight (a cancel then times how long the step takes to stop). */
  private stepping = false;
  /** performance.now() of a cancel that found a step in flight; 0 otherwise. */
  private cancelledAt = 0;
  /** The `agentwire.turn` span (OpenTelemetry; non-recording without an SDK), from begin to turn_end. No tracing work per token. */
  private span: Span | undefined;
  private traceContext: Context | undefined;

  constructor(
    readonly id: string,
    input: string,
    private readonly deps: TurnDeps,
  ) {
    this.record = { id, input, status: "queued", text: "", inputTokens: 0, outputTokens: 0, startedAt: Date.now() };
    // An own enumerable getter while running: JSON (snapshots, forwarding) and readers see the text so far.
    Object.defineProperty(this.record, "text", { get: () => this.allText, enumerable: true, configurable: true });
  }

  private get stepText(): string {
    return this.texts.slice(this.stepStart, this.texts.end);
  }

  private get allText(): string {
    return this.texts.slice(0, this.texts.end);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The turn is accepted: `turn_start` goes out. It runs once `run` is called (at once, or when the queue lets it). */
  begin(): void {
    const start: LoggedEventInput = { type: "turn_start", turn: this.id, input: this.record.input };
    if (this.deps.messageId !== undefined) start.id = this.deps.messageId;
    this.openSpan();
    this.deps.emit(start);
  }

  /** Starts the turn's span (a trace root) once: at acceptance, so its duration includes the queue wait. */
  private openSpan(): Context {
    if (this.traceContext) return this.traceContext;
    const attributes: Record<string, string> = { "agentwire.session_id": this.deps.sessionId, "agentwire.turn_id": this.id };
    if (this.deps.identity !== undefined) attributes["agentwire.identity"] = this.deps.identity;
    if (this.deps.model !== undefined) attributes["gen_ai.request.model"] = this.deps.model;
    this.span = trace.getTracer(TRACER_NAME).startSpan("agentwire.turn", { root: true, attributes });
    this.traceContext = trace.setSpan(ROOT_CONTEXT, this.span);
    return this.traceContext;
  }

  /** Where it stands in the admission queue: a logged `progress{stage:"queued"}`. */
  queued(position: number, etaMs: number | undefined): void {
    if (this.ended) return;
    this.record.position = position;
    this.deps.emit({ type: "progress", turn: this.id, stage: "queued", position, etaMs });
  }

  /** Ends a turn that never ran (queue timeout, a draining node): the upstream was never called. */
  expire(code: ErrorCode, message: string, retryAfterMs: number): void {
    this.fail(new AgentError(code, message, true, retryAfterMs));
  }

  /** Runs the agent; the returned promise settles when the agent work is over (turn_end may come earlier on cancel). */
  async run(): Promise<void> {
    if (this.ended) return;
    this.record.status = "running";
    delete this.record.position;
    this.runStartedAt = Date.now();
    this.openSpan();
    this.span?.setAttribute("agentwire.queue_wait_ms", this.runStartedAt - this.record.startedAt);
    const { timeoutMs } = this.deps;
    this.deadline = setTimeout(() => this.fail(new AgentError(ErrorCode.UpstreamTimeout, `the turn ran longer than ${timeoutMs} ms`, true)), timeoutMs);
    this.deadline.unref();
    try {
      for (let step = 0; step < this.deps.maxSteps; step++) {
        const result = await this.awaitStep(step);
        if (this.ended) return;
        this.commitStep(result.toolCalls);
        if (result.finish !== "tool_calls" || result.toolCalls.length === 0) {
          const status = result.finish === "incomplete" ? "incomplete" : "completed";
          this.finish(status, result.finish === "incomplete" ? "truncated" : result.finish);
          return;
        }
        await this.runTools(result.toolCalls);
        if (this.ended) return;
      }
      this.finish("incomplete", "max_steps");
    } catch (err) {
      if (this.ended) return;
      this.fail(err);
    }
  }

  /** Cancels the turn now: turn_end goes out at once, the agent's signal aborts. Idempotent. */
  cancel(reason: "cancelled" | "interrupted" | "session_ended" = "cancelled"): boolean {
    if (this.ended) return false;
    if (this.stepping) this.cancelledAt = performance.now();
    if (this.stepText) this.deps.history.push({ role: "assistant", text: this.stepText });
    this.finish("cancelled", reason);
    return true;
  }

  /** Answers a client-executed tool call. False when no call with that id is waiting. */
  resolveClientTool(callId: string, output: unknown, isError: boolean): boolean {
    const pending = this.pendingClientCalls.get(callId);
    if (!pending) return false;
    this.pendingClientCalls.delete(callId);
    pending.resolve({ output, isError });
    return true;
  }

  private allTools(): ToolDeclaration[] {
    const allowed = this.deps.allowedTools;
    const server = this.deps.tools.declarations();
    return [...(allowed ? server.filter((t) => allowed.has(t.name)) : server), ...this.deps.clientTools];
  }

  private executorOf(name: string): "server" | "client" {
    return this.deps.clientTools.some((t) => t.name === name) ? "client" : "server";
  }

  /** The ended turn's counts and timings (no text). */
  report(): TurnReport {
    const { record } = this;
    const endedAt = record.endedAt ?? Date.now();
    const ran = this.runStartedAt > 0;
    return {
      status: record.status as TurnReport["status"],
      reason: record.reason ?? "",
      model: this.deps.model,
      inputTokens: record.inputTokens,
      outputTokens: record.outputTokens,
      durationMs: endedAt - record.startedAt,
      queuedMs: (ran ? this.runStartedAt : endedAt) - record.startedAt,
      ttftMs: ran && this.firstTextAt > 0 ? this.firstTextAt - this.runStartedAt : null,
      steps: this.steps,
      toolCalls: this.toolCalls,
      retries: this.retries,
    };
  }

  /** One agent step; a cancel that lands meanwhile learns how long the step took to stop. */
  private async awaitStep(step: number): Promise<StepResult> {
    this.steps++;
    this.stepping = true;
    try {
      return await this.runStep(step);
    } finally {
      this.stepping = false;
      if (this.cancelledAt > 0) {
        this.deps.cancelSettled?.(performance.now() - this.cancelledAt);
        this.cancelledAt = 0;
      }
    }
  }

  private runStep(step: number): Promise<StepResult> {
    this.stepIn = 0;
    this.stepOut = 0;
    this.stepStart = this.texts.end;
    const names = new Map<string, string>();
    const argChars = new Map<string, number>();
    const sink: StepSink = {
      text: (delta) => {
        if (this.ended || delta.length === 0) return;
        // One compare per delta, the clock only once a turn: the time to first token.
        if (this.firstTextAt === 0) this.firstTextAt = Date.now();
        if (delta.length <= MAX_DELTA_CHARS && this.texts.end + delta.length <= this.deps.maxOutputChars) {
          this.texts.add(delta);
          this.deps.emitToken(this.id, delta);
          return;
        }
        this.longText(delta);
      },
      progress: (stage, message, fraction) => {
        if (this.ended) return;
        this.deps.emit({ type: "progress", turn: this.id, stage, message, fraction });
      },
      toolCallStart: (callId, name) => {
        if (this.ended) return;
        names.set(callId, name);
        this.deps.emit({ type: "tool", turn: this.id, callId, phase: "start", name, executor: this.executorOf(name) });
      },
      toolCallDelta: (callId, argsDelta) => {
        if (this.ended) return;
        const total = (argChars.get(callId) ?? 0) + argsDelta.length;
        argChars.set(callId, total);
        if (total > this.deps.maxToolArgsChars) {
          this.fail(new AgentError(ErrorCode.UpstreamError, `the model's arguments for a tool call exceed ${this.deps.maxToolArgsChars} characters`));
          return;
        }
        const name = names.get(callId) ?? "";
        const executor = this.executorOf(name);
        for (const piece of pieces(argsDelta)) this.deps.emit({ type: "tool", turn: this.id, callId, phase: "delta", name, executor, argsDelta: piece });
      },
      usage: (inputTokens, outputTokens) => {
        if (this.ended) return;
        this.stepIn = inputTokens;
        this.stepOut = outputTokens;
      },
      retried: () => {
        if (!this.ended) this.retries++;
      },
    };
    const request = {
      sessionId: this.deps.sessionId,
      turnId: this.id,
      model: this.deps.model,
      system: this.deps.system,
      history: this.deps.history,
      tools: this.allTools(),
      step,
      traceContext: this.traceContext,
    };
    return this.deps.agent.step(request, sink, this.controller.signal);
  }

  /** A delta too long for one frame, or past the turn's output limit: split it, and end the turn at the limit. */
  private longText(delta: string): void {
    const room = this.deps.maxOutputChars - this.texts.end;
    const fits = delta.length <= room ? delta : delta.slice(0, cutAt(delta, room));
    for (const piece of pieces(fits)) {
      if (piece.length === 0) continue;
      this.texts.add(piece);
      this.deps.emitToken(this.id, piece);
    }
    if (fits.length < delta.length) {
      this.deps.log?.("warn", { turn: this.id, maxOutputChars: this.deps.maxOutputChars }, "turn reached its output limit");
      if (this.stepText) this.deps.history.push({ role: "assistant", text: this.stepText });
      this.finish("incomplete", "output_limit");
    }
  }

  private commitStep(toolCalls: ToolCall[]): void {
    this.doneIn += this.stepIn;
    this.doneOut += this.stepOut;
    this.stepIn = 0;
    this.stepOut = 0;
    const text = this.stepText;
    this.stepStart = this.texts.end;
    const message: HistoryMessage = { role: "assistant", text };
    if (toolCalls.length > 0) message.toolCalls = toolCalls;
    this.deps.history.push(message);
  }

  private async runTools(calls: ToolCall[]): Promise<void> {
    this.toolCalls += calls.length;
    for (const call of calls) {
      this.deps.emit({ type: "tool", turn: this.id, callId: call.id, phase: "ready", name: call.name, executor: this.executorOf(call.name), args: call.args });
    }
    const results = await Promise.all(calls.map((call) => this.runTool(call)));
    if (this.ended) return;
    calls.forEach((call, i) => {
      const r = results[i] as { output: unknown; isError: boolean; code?: string };
      this.deps.emit({ type: "tool", turn: this.id, callId: call.id, phase: "result", name: call.name, executor: this.executorOf(call.name), output: r.output, isError: r.isError, code: r.code });
      const output = typeof r.output === "string" ? r.output : JSON.stringify(r.output ?? null);
      this.deps.history.push({ role: "tool", callId: call.id, name: call.name, output, isError: r.isError });
    });
  }

  /** One tool call under its `agentwire.tool <name>` span. */
  private async runTool(call: ToolCall): Promise<{ output: unknown; isError: boolean; code?: string }> {
    const executor = this.executorOf(call.name);
    const parent = this.traceContext ?? ROOT_CONTEXT;
    const span = trace.getTracer(TRACER_NAME).startSpan(
      `agentwire.tool ${call.name}`,
      { attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name, "gen_ai.tool.call.id": call.id, "agentwire.tool.executor": executor } },
      parent,
    );
    try {
      // Server tools run inside the span's context, so an embedder's instrumented tool nests under it.
      const r = await otelContext.with(trace.setSpan(parent, span), () => this.executeTool(call, executor));
      span.setAttribute("agentwire.tool.is_error", r.isError);
      if (r.code !== undefined) span.setAttribute("error.type", r.code);
      if (r.isError) span.setStatus({ code: SpanStatusCode.ERROR, message: r.code ?? "tool_error" });
      return r;
    } finally {
      span.end();
    }
  }

  private async executeTool(call: ToolCall, executor: "server" | "client"): Promise<{ output: unknown; isError: boolean; code?: string }> {
    if (executor === "client") return this.waitForClient(call);
    const allowed = this.deps.allowedTools;
    const tool = allowed && !allowed.has(call.name) ? undefined : this.deps.tools.get(call.name);
    if (!tool) return { output: `unknown tool "${call.name}"`, isError: true, code: ErrorCode.ToolFailed };
    try {
      return { output: await tool.run(call.args, this.controller.signal), isError: false };
    } catch (err) {
      return { output: err instanceof Error ? err.message : String(err), isError: true, code: ErrorCode.ToolFailed };
    }
  }

  private waitForClient(call: ToolCall): Promise<{ output: unknown; isError: boolean; code?: string }> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingClientCalls.delete(call.id);
        resolve({ output: `no tool_result within ${this.deps.clientToolTimeoutMs} ms`, isError: true, code: ErrorCode.ToolTimeout });
      }, this.deps.clientToolTimeoutMs);
      const settle = (r: { output: unknown; isError: boolean; code?: string }) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.pendingClientCalls.set(call.id, { resolve: settle });
      this.controller.signal.addEventListener("abort", () => settle({ output: "cancelled", isError: true }), { once: true });
    });
  }

  private fail(err: unknown): void {
    if (this.ended) return;
    const agentError = err instanceof AgentError ? err : null;
    const code = agentError?.code ?? ErrorCode.UpstreamError;
    const message = agentError?.message ?? "the agent failed";
    if (!agentError) this.deps.log?.("error", { err, turn: this.id }, "agent step threw");
    // Agent messages carry no credentials (adapters redact them), so operators can see why a turn failed.
    else this.deps.log?.("warn", { turn: this.id, code, retryable: agentError.retryable, reason: agentError.message, detail: agentError.detail }, "turn failed upstream");
    this.deps.emit({ type: "error", turn: this.id, code, message, retryable: agentError?.retryable ?? false, retryAfterMs: agentError?.retryAfterMs });
    if (this.stepText) this.deps.history.push({ role: "assistant", text: this.stepText });
    this.finish("failed", code);
  }

  private finish(status: TurnStatus, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    const inputTokens = this.doneIn + this.stepIn;
    const outputTokens = this.doneOut + this.stepOut;
    this.record.inputTokens = inputTokens;
    this.record.outputTokens = outputTokens;
    this.deps.emit({ type: "usage", turn: this.id, inputTokens, outputTokens, partial: status !== "completed" });
    this.deps.emit({ type: "turn_end", turn: this.id, status, reason });
    this.record.status = status;
    this.record.reason = reason;
    // Fixed once ended, so the kept record no longer holds on to this turn.
    Object.defineProperty(this.record, "text", { value: this.allText, enumerable: true, writable: true, configurable: true });
    this.record.endedAt = Date.now();
    this.endSpan(status, reason, inputTokens, outputTokens);
    if (this.deadline) clearTimeout(this.deadline);
    this.controller.abort();
    this.deps.onEnd(this);
  }

  /** Ends the turn's span at turn_end: ERROR for a failed turn. */
  private endSpan(status: TurnStatus, reason: string, inputTokens: number, outputTokens: number): void {
    const span = this.span;
    if (!span) return;
    span.setAttributes({
      "agentwire.turn.status": status,
      "agentwire.turn.reason": reason,
      "gen_ai.usage.input_tokens": inputTokens,
      "gen_ai.usage.output_tokens": outputTokens,
      "agentwire.turn.steps": this.steps,
      "agentwire.turn.tool_calls": this.toolCalls,
      "agentwire.turn.retries": this.retries,
    });
    if (status === "failed") span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    span.end();
  }
}

/** Largest text in one token or argument frame; longer deltas are split. */
export const MAX_DELTA_CHARS = 4096;

/** Where to cut `text` at or before `at` without splitting a surrogate pair. */
function cutAt(text: string, at: number): number {
  if (at <= 0) return 0;
  const code = text.charCodeAt(at - 1);
  return code >= 0xd800 && code <= 0xdbff ? at - 1 : at;
}

/** `text` in pieces of at most MAX_DELTA_CHARS (one piece, itself, when it is short: the usual case). */
function pieces(text: string): string[] {
  if (text.length <= MAX_DELTA_CHARS) return [text];
  const out: string[] = [];
  for (let start = 0; start < text.length; ) {
    const end = start + MAX_DELTA_CHARS >= text.length ? text.length : cutAt(text, start + MAX_DELTA_CHARS);
    out.push(text.slice(start, end));
    start = end;
  }
  return out;
}
