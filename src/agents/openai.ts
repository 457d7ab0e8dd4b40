// Agent for OpenAI-compatible Chat Completions streaming (OpenAI, and the many servers that copy its API).
import { ErrorCode, type ToolDeclaration } from "@agentwire/protocol";
import {
  type Agent,
  AgentError,
  type HistoryMessage,
  type StepFinish,
  type StepRequest,
  type StepResult,
  type StepSink,
} from "../engine/agent.js";
import { type HistoryBudget, estimateTokens, trimHistory, validateBudget } from "./history-budget.js";
import { HttpUpstream, type HttpUpstreamOptions } from "./http-upstream.js";
import { ToolCallAssembler, UsageMeter, isRecord, numberOr, settleFinish } from "./step-output.js";
import { readErrorInfo, streamError } from "./upstream-errors.js";
import type { SseEvent } from "@agentwire/protocol/sse";

export interface OpenAIAgentOptions extends HttpUpstreamOptions {
  /**
   * Sent as `Authorization: Bearer`. An empty key sends no Authorization header (local servers).
   */
  apiKey: string;
  /** Base URL up to and including the version segment; `/chat/completions` is appended. @default "https://api.openai.com/v1" */
  baseUrl?: string;
  /** Model used when the step's request names none. @default "gpt-4.1-mini" */
  model?: string;
  /** Extra request headers (organization, project, gateway routing). @default {} */
  headers?: Record<string, string>;
  /** Trim history to this budget before each request. @default undefined (send all of it) */
  historyBudget?: HistoryBudget;
}

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";
export const OPENAI_DEFAULT_MODEL = "gpt-4.1-mini";

/** A Chat Completions message as sent upstream. */
export type OpenAIMessage =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string | null; tool_calls?: OpenAIToolCall[] }
  | { role: "tool"; tool_call_id: string; content: string };

interface OpenAIToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export class OpenAIAgent implements Agent {
  readonly name = "openai";
  private readonly http: HttpUpstream;
  private readonly url: string;
  private readonly model: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: OpenAIAgentOptions) {
    this.http = new HttpUpstream(options);
    if (options.historyBudget) validateBudget(options.historyBudget);
    this.url = `${(options.baseUrl ?? OPENAI_DEFAULT_BASE_URL).replace(/\/+$/, "")}/chat/completions`;
    this.model = options.model ?? OPENAI_DEFAULT_MODEL;
    this.headers = { ...options.headers };
    if (options.apiKey) this.headers.authorization = `Bearer ${options.apiKey}`;
  }

  step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    const budget = this.options.historyBudget;
    const history = budget ? trimHistory(request.history, budget) : request.history;
    const body: Record<string, unknown> = {
      model: request.model ?? this.model,
      messages: renderOpenAIMessages(request.system, history),
      stream: true,
      stream_options: { include_usage: true },
    };
    if (request.tools.length > 0) body.tools = renderOpenAITools(request.tools);
    const text = JSON.stringify(body);
    const upstream = { url: this.url, headers: this.headers, body: text, traceContext: request.traceContext, model: body.model as string, provider: "openai" };
    return this.http.run(upstream, sink, signal, (events, out) =>
      this.readStream(events, out, estimateTokens(text)),
    );
  }

  private async readStream(events: AsyncIterable<SseEvent>, sink: StepSink, inputEstimate: number): Promise<StepResult> {
    const usage = new UsageMeter(sink);
    usage.estimateInput(inputEstimate);
    const calls = new ToolCallAssembler(sink);
    let finish: StepFinish | undefined;
    let ended = false;
    for await (const event of events) {
      if (event.data === "[DONE]") {
        ended = true;
        break;
      }
      if (event.data.trim() === "") continue;
      const chunk = parseChunk(event.data, (t) => this.http.redact(t));
      if (event.type === "error" || chunk.error) throw streamError(readErrorInfo(chunk, "unknown error"), this.options.apiKey);
      for (const choice of asArray(chunk.choices)) {
        if (!isRecord(choice) || (choice.index ?? 0) !== 0) continue;
        const delta = isRecord(choice.delta) ? choice.delta : {};
        // A refusal is what the model said instead of an answer: show it like text.
        for (const piece of [delta.content, delta.refusal]) {
          if (typeof piece === "string" && piece !== "") {
            sink.text(piece);
            usage.fragment();
          }
        }
        asArray(delta.tool_calls).forEach((tc, position) => {
          if (isRecord(tc)) this.toolFragment(tc, position, calls, usage);
        });
        if (typeof choice.finish_reason === "string") finish = mapFinish(choice.finish_reason);
      }
      if (isRecord(chunk.usage)) {
        usage.actual(numberOr(chunk.usage.prompt_tokens, 0), numberOr(chunk.usage.completion_tokens, 0));
      }
    }
    return settleFinish(finish, ended, calls);
  }

  /** `id` and `name` come only with a call's first fragment; later ones carry `index` and argument text. */
  private toolFragment(tc: Record<string, unknown>, position: number, calls: ToolCallAssembler, usage: UsageMeter): void {
    const index = typeof tc.index === "number" ? tc.index : position;
    const fn = isRecord(tc.function) ? tc.function : {};
    if (!calls.has(index)) {
      const id = typeof tc.id === "string" && tc.id !== "" ? tc.id : `call_${index}`;
      calls.start(index, id, typeof fn.name === "string" ? fn.name : "");
    }
    if (typeof fn.arguments === "string" && fn.arguments !== "") {
      calls.append(index, fn.arguments);
      usage.fragment();
    }
  }
}

/** System prompt and history in Chat Completions form. */
export function renderOpenAIMessages(system: string | undefined, history: readonly HistoryMessage[]): OpenAIMessage[] {
  const out: OpenAIMessage[] = [];
  if (system) out.push({ role: "system", content: system });
  for (const m of history) {
    if (m.role === "user") {
      out.push({ role: "user", content: m.text });
    } else if (m.role === "assistant") {
      const calls = m.toolCalls ?? [];
      if (calls.length === 0) {
        out.push({ role: "assistant", content: m.text });
        continue;
      }
      out.push({
        role: "assistant",
        // OpenAI wants null, not "", when the message is only tool calls.
        content: m.text === "" ? null : m.text,
        tool_calls: calls.map((c) => ({
          id: c.id,
          type: "function",
          // Arguments kept raw (invalid JSON from the model) go back exactly as the model wrote them.
          function: { name: c.name, arguments: typeof c.args === "string" ? c.args : JSON.stringify(c.args ?? {}) },
        })),
      });
    } else {
      // Chat Completions has no error flag on tool messages; say it in the content.
      out.push({ role: "tool", tool_call_id: m.callId, content: m.isError ? `Error: ${m.output}` : m.output });
    }
  }
  return out;
}

export function renderOpenAITools(tools: readonly ToolDeclaration[]): unknown[] {
  return tools.map((t) => ({
    type: "function",
    function: { name: t.name, description: t.description, parameters: t.parameters },
  }));
}

function mapFinish(reason: string): StepFinish {
  switch (reason) {
    case "stop":
      return "stop";
    case "tool_calls":
    case "function_call":
      return "tool_calls";
    case "length":
      return "max_tokens";
    case "content_filter":
      return "content_filter";
    default:
      return "stop";
  }
}

function parseChunk(data: string, redact: (t: string) => string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw new AgentError(ErrorCode.UpstreamError, "upstream sent a chunk that is not JSON", false, undefined, redact(data.slice(0, 200)));
  }
  if (!isRecord(value)) throw new AgentError(ErrorCode.UpstreamError, "upstream sent a chunk that is not an object");
  return value;
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
