// Agent for the Anthropic Messages API with streaming (`event:` + `data:` pairs, tool_use blocks).
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
import { type HistoryBudget, trimHistory, validateBudget } from "./history-budget.js";
import { HttpUpstream, type HttpUpstreamOptions } from "./http-upstream.js";
import { ToolCallAssembler, UsageMeter, isRecord, numberOr, settleFinish } from "./step-output.js";
import { readErrorInfo, streamError } from "./upstream-errors.js";
import type { SseEvent } from "@agentwire/protocol/sse";

export interface AnthropicAgentOptions extends HttpUpstreamOptions {
  /** Sent as `x-api-key`. */
  apiKey: string;
  /** Base URL without the version; `/v1/messages` is appended. @default "https://api.anthropic.com" */
  baseUrl?: string;
  /** Model used when the step's request names none. @default "claude-sonnet-4-5" */
  model?: string;
  /** `max_tokens` of each request (the API requires one). @default 4096 */
  maxTokens?: number;
  /** Extra request headers (e.g. `anthropic-beta`). @default {} */
  headers?: Record<string, string>;
  /** Trim history to this budget before each request. @default undefined (send all of it) */
  historyBudget?: HistoryBudget;
}

export const ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com";
export const ANTHROPIC_DEFAULT_MODEL = "claude-sonnet-4-5";
export const ANTHROPIC_VERSION = "2023-06-01";

export type AnthropicBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }
  | { type: "tool_result"; tool_use_id: string; content: string; is_error: boolean };

export interface AnthropicMessage {
  role: "user" | "assistant";
  content: AnthropicBlock[];
}

export class AnthropicAgent implements Agent {
  readonly name = "anthropic";
  private readonly http: HttpUpstream;
  private readonly url: string;
  private readonly model: string;
  private readonly maxTokens: number;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: AnthropicAgentOptions) {
    this.http = new HttpUpstream(options);
    if (options.historyBudget) validateBudget(options.historyBudget);
    this.url = `${(options.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, "")}/v1/messages`;
    this.model = options.model ?? ANTHROPIC_DEFAULT_MODEL;
    this.maxTokens = options.maxTokens ?? 4096;
    if (!Number.isInteger(this.maxTokens) || this.maxTokens < 1) throw new RangeError("maxTokens must be an integer >= 1");
    this.headers = { ...options.headers, "x-api-key": options.apiKey, "anthropic-version": ANTHROPIC_VERSION };
  }

  step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    const budget = this.options.historyBudget;
    const history = budget ? trimHistory(request.history, budget) : request.history;
    const body: Record<string, unknown> = {
      model: request.model ?? this.model,
      max_tokens: this.maxTokens,
      messages: renderAnthropicMessages(history),
      stream: true,
    };
    if (request.system) body.system = request.system;
    if (request.tools.length > 0) body.tools = renderAnthropicTools(request.tools);
    const text = JSON.stringify(body);
    const upstream = { url: this.url, headers: this.headers, body: text, traceContext: request.traceContext, model: body.model as string, provider: "anthropic" };
    return this.http.run(upstream, sink, signal, (events, out) =>
      this.readStream(events, out),
    );
  }

  private async readStream(events: AsyncIterable<SseEvent>, sink: StepSink): Promise<StepResult> {
    const usage = new UsageMeter(sink);
    const calls = new ToolCallAssembler(sink);
    let input = 0;
    let finish: StepFinish | undefined;
    let ended = false;
    for await (const event of events) {
      if (event.data.trim() === "") continue;
      const data = parseEvent(event, (t) => this.http.redact(t));
      const type = typeof data.type === "string" ? data.type : event.type;
      if (type === "message_stop") {
        ended = true;
        break;
      }
      switch (type) {
        case "message_start": {
          const message = isRecord(data.message) ? data.message : {};
          const u = isRecord(message.usage) ? message.usage : {};
          input = inputTokens(u, 0);
          usage.actual(input, numberOr(u.output_tokens, 0));
          break;
        }
        case "content_block_start": {
          const index = numberOr(data.index, 0);
          const block = isRecord(data.content_block) ? data.content_block : {};
          if (block.type === "tool_use") {
            calls.start(index, String(block.id ?? `toolu_${index}`), String(block.name ?? ""), block.input);
          } else if (block.type === "text") {
            if (typeof block.text === "string" && block.text !== "") {
              sink.text(block.text);
              usage.fragment();
            }
          }
          break;
        }
        case "content_block_delta": {
          const index = numberOr(data.index, 0);
          const delta = isRecord(data.delta) ? data.delta : {};
          // thinking, signature and citation deltas are not part of the answer text: skipped.
          if (delta.type === "text_delta" && typeof delta.text === "string" && delta.text !== "") {
            sink.text(delta.text);
            usage.fragment();
          } else if (delta.type === "input_json_delta" && typeof delta.partial_json === "string") {
            if (delta.partial_json !== "" && calls.append(index, delta.partial_json)) usage.fragment();
          }
          break;
        }
        case "message_delta": {
          const delta = isRecord(data.delta) ? data.delta : {};
          if (typeof delta.stop_reason === "string") finish = mapStopReason(delta.stop_reason);
          // Usage here is cumulative; input fields appear only in newer API versions.
          const u = isRecord(data.usage) ? data.usage : {};
          input = inputTokens(u, input);
          if (typeof u.output_tokens === "number") usage.actual(input, u.output_tokens);
          break;
        }
        case "error":
          throw streamError(readErrorInfo(data, "unknown error"), this.options.apiKey);
        default:
          break; // ping, content_block_stop and event types added later
      }
    }
    return settleFinish(finish, ended, calls);
  }
}

/** History in Messages API form: blocks per message, consecutive same-role messages merged. */
export function renderAnthropicMessages(history: readonly HistoryMessage[]): AnthropicMessage[] {
  const out: AnthropicMessage[] = [];
  const add = (role: AnthropicMessage["role"], blocks: AnthropicBlock[]): void => {
    if (blocks.length === 0) return;
    const last = out[out.length - 1];
    // The API wants user and assistant to alternate; tool results are user content.
    if (last && last.role === role) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  };
  for (const m of history) {
    if (m.role === "user") {
      // Empty text blocks are rejected by the API.
      add("user", m.text === "" ? [] : [{ type: "text", text: m.text }]);
    } else if (m.role === "assistant") {
      const blocks: AnthropicBlock[] = m.text === "" ? [] : [{ type: "text", text: m.text }];
      for (const c of m.toolCalls ?? []) {
        // `input` must be an object; arguments kept raw because they were not valid JSON become {}.
        const input = typeof c.args === "object" && c.args !== null && !Array.isArray(c.args) ? c.args : {};
        blocks.push({ type: "tool_use", id: c.id, name: c.name, input });
      }
      add("assistant", blocks);
    } else {
      add("user", [{ type: "tool_result", tool_use_id: m.callId, content: m.output, is_error: m.isError }]);
    }
  }
  return out;
}

export function renderAnthropicTools(tools: readonly ToolDeclaration[]): unknown[] {
  return tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters }));
}

function mapStopReason(reason: string): StepFinish {
  switch (reason) {
    case "tool_use":
      return "tool_calls";
    case "max_tokens":
    case "model_context_window_exceeded":
      return "max_tokens";
    case "refusal":
      return "content_filter";
    default:
      return "stop"; // end_turn, stop_sequence, pause_turn
  }
}

/** Input tokens including cache reads and writes, which Anthropic counts apart from `input_tokens`. */
function inputTokens(u: Record<string, unknown>, fallback: number): number {
  if (typeof u.input_tokens !== "number") return fallback;
  return u.input_tokens + numberOr(u.cache_creation_input_tokens, 0) + numberOr(u.cache_read_input_tokens, 0);
}

function parseEvent(event: SseEvent, redact: (t: string) => string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(event.data);
  } catch {
    throw new AgentError(ErrorCode.UpstreamError, "upstream sent an event that is not JSON", false, undefined, redact(event.data.slice(0, 200)));
  }
  if (!isRecord(value)) throw new AgentError(ErrorCode.UpstreamError, "upstream sent an event that is not an object");
  return value;
}
