// Maps upstream HTTP failures to AgentError codes, parses retry hints, and keeps API keys out of messages.
import { ErrorCode } from "@agentwire/protocol";
import { AgentError } from "../engine/agent.js";
import { isRecord } from "./step-output.js";

const MAX_MESSAGE_CHARS = 500;

/**
 * Removes anything that looks like a secret: the configured key itself, `sk-...` style keys (the
 * providers echo them, masked or not, in 401 bodies) and bearer tokens. Also caps the length.
 */
export function redactSecrets(text: string, apiKey: string | undefined): string {
  let out = text;
  if (apiKey && apiKey.length >= 4) out = out.split(apiKey).join("[redacted]");
  out = out.replace(/\bsk-[A-Za-z0-9_*-]{4,}/g, "[redacted]");
  out = out.replace(/\b(Bearer\s+)[A-Za-z0-9._~+/=*-]{8,}/gi, "$1[redacted]");
  return out.length > MAX_MESSAGE_CHARS ? `${out.slice(0, MAX_MESSAGE_CHARS)}...` : out;
}

/**
 * The wait an upstream asked for, in ms: `retry-after-ms` (OpenAI), else `retry-after` as seconds
 * or an HTTP date. Undefined when absent or unparsable.
 */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.ceil(Number(ms));
  const value = headers.get("retry-after");
  if (value === null) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.ceil(Number(value) * 1000);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** What a provider error object says, as far as we can tell: `{error: {type, code, message}}` or `{type, message}`. */
export interface UpstreamErrorInfo {
  type: string;
  message: string;
}

/** Reads the provider error object out of a JSON body or stream event; tolerant of every shape we have seen. */
export function readErrorInfo(value: unknown, fallback: string): UpstreamErrorInfo {
  const obj = isRecord(value) ? value : undefined;
  const inner = isRecord(obj?.error) ? obj.error : obj;
  const typeOf = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
  const type = typeOf(inner?.type) ?? typeOf(inner?.code) ?? "";
  const message = typeOf(inner?.message) ?? (typeof obj?.error === "string" ? obj.error : fallback);
  return { type, message };
}

/**
 * The error for a provider error object received after the HTTP 200 (mid-stream). Overload and
 * rate limits stay retryable so the caller may retry while nothing has been shown yet.
 */
export function streamError(info: UpstreamErrorInfo, apiKey: string | undefined): AgentError {
  const msg = redactSecrets(`upstream error${info.type ? ` (${info.type})` : ""}: ${info.message}`, apiKey);
  const type = info.type.toLowerCase();
  if (type.includes("overload")) return new AgentError(ErrorCode.UpstreamOverloaded, msg, true);
  if (type.includes("rate_limit")) return new AgentError(ErrorCode.RateLimited, msg, true);
  if (type === "api_error" || type === "server_error") return new AgentError(ErrorCode.UpstreamError, msg, true);
  return new AgentError(ErrorCode.UpstreamError, msg, false);
}

/** The error for a non-2xx answer. `retryAfterMs` is the upstream's hint when it gave one. */
export function statusError(
  status: number,
  bodyText: string,
  retryAfterMs: number | undefined,
  apiKey: string | undefined,
): AgentError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bodyText);
  } catch {
    parsed = undefined;
  }
  // A body that is not a provider's JSON error (an HTML page from a proxy, say) goes to logs, not to clients.
  const info = readErrorInfo(parsed, bodyText.trim() === "" ? "(empty body)" : "(no JSON error body)");
  const detail = parsed === undefined && bodyText.trim() !== "" ? redactSecrets(bodyText.slice(0, 200), apiKey) : undefined;
  const msg = redactSecrets(`upstream HTTP ${status}${info.type ? ` ${info.type}` : ""}: ${info.message}`, apiKey);
  if (status === 429) return new AgentError(ErrorCode.RateLimited, msg, true, retryAfterMs, detail);
  if (status === 529 || status === 503 || info.type.toLowerCase().includes("overload")) {
    return new AgentError(ErrorCode.UpstreamOverloaded, msg, true, retryAfterMs, detail);
  }
  if (status >= 500 || status === 408) return new AgentError(ErrorCode.UpstreamError, msg, true, retryAfterMs, detail);
  // 4xx: our request or our credentials are wrong; sending it again will not help.
  return new AgentError(ErrorCode.UpstreamError, msg, false, undefined, detail);
}

