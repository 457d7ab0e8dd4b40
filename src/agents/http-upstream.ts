// Shared HTTP machinery for provider agents: POST a JSON body, stream SSE back, with timeouts and retries.
import { ErrorCode } from "@agentwire/protocol";
import { type Attributes, type Span, SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import { backoffMs, jitteredBackoffMs } from "../backoff.js";
import { AgentError, type StepSink, TRACER_NAME } from "../engine/agent.js";
import { parseRetryAfter, readErrorInfo, redactSecrets, statusError } from "./upstream-errors.js";
import { Attempt, CancelledTurn, type UpstreamRequest, type UpstreamTimeouts } from "./upstream-attempt.js";
import type { SseEvent } from "@agentwire/protocol/sse";

export type { UpstreamRequest, UpstreamTimeouts } from "./upstream-attempt.js";

export interface RetryPolicy {
  /**
   * Attempts in total, the first included. Retries happen only while the step has produced no
   * output, on 429, 408, 5xx (529 too), overload errors and failed connections. Timeouts are
   * not retried: each attempt could spend the whole timeout again.
   * @default 3
   */
  maxAttempts: number;
  /**
   * Backoff before retry n is a random wait in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))]
   * (full jitter), unless the upstream sent `retry-after` / `retry-after-ms`.
   * @default 500
   */
  baseDelayMs: number;
  /**
   * Cap on any single wait. A `retry-after` longer than this is not waited out: the step fails
   * at once with `retryAfterMs` set so the caller can decide.
   * @default 8000
   */
  maxDelayMs: number;
}

/** Reported before each backoff wait; handy for logs and metrics. */
export interface RetryInfo {
  /** The attempt that just failed, from 1. */
  attempt: number;
  delayMs: number;
  error: AgentError;
}

export interface HttpUpstreamOptions {
  apiKey: string;
  timeouts?: Partial<UpstreamTimeouts>;
  retry?: Partial<RetryPolicy>;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  onRetry?: (info: RetryInfo) => void;
  /** Called as each attempt starts (the first included): metrics. */
  onAttempt?: (attempt: number) => void;
  /** Called for every attempt that failed with an upstream error, retried or not (not for the turn's own cancel): metrics. */
  onFailure?: (error: AgentError) => void;
  /** Source of randomness for jitter, in [0, 1). @default Math.random */
  random?: () => number;
  /** Longest SSE line or event accepted from the upstream (characters); a longer one fails the step. @default 1048576 */
  maxEventChars?: number;
}

export const DEFAULT_TIMEOUTS: Readonly<UpstreamTimeouts> = Object.freeze({ connectMs: 15_000, firstByteMs: 60_000, idleMs: 30_000 });
export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({ maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 8_000 });


/** Reads one attempt's events into the sink; returns the step's result. */
export type StreamConsumer<T> = (events: AsyncIterable<SseEvent>, sink: StepSink) => Promise<T>;

/** Bytes of an error body worth reading: enough for the provider's message, bounded against abuse. */
const MAX_ERROR_BODY = 16 * 1024;

export class HttpUpstream {
  readonly timeouts: UpstreamTimeouts;
  readonly retry: RetryPolicy;
  private readonly apiKey: string;
  private readonly fetchFn: typeof fetch;
  private readonly onRetry: ((info: RetryInfo) => void) | undefined;
  private readonly onAttempt: ((attempt: number) => void) | undefined;
  private readonly onFailure: ((error: AgentError) => void) | undefined;
  private readonly random: () => number;
  private readonly maxEventChars: number | undefined;

  constructor(options: HttpUpstreamOptions) {
    this.maxEventChars = options.maxEventChars;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    validate(this.timeouts, this.retry);
    this.apiKey = options.apiKey;
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.onRetry = options.onRetry;
    this.onAttempt = options.onAttempt;
    this.onFailure = options.onFailure;
    this.random = options.random ?? Math.random;
  }

  /** Removes the key and key-like strings from a message that may be shown to clients. */
  redact(text: string): string {
    return redactSecrets(text, this.apiKey);
  }

  /**
   * Sends the request and hands the event stream to `consume`, retrying on retryable failures as
   * long as no text or tool call has reached the sink, so a client never sees output twice.
   * Rejects with the signal's reason when the signal aborts.
   */
  async run<T>(request: UpstreamRequest, sink: StepSink, signal: AbortSignal, consume: StreamConsumer<T>): Promise<T> {
    const tracked = trackOutput(sink);
    for (let attempt = 1; ; attempt++) {
      const call = new Attempt(signal, this.timeouts, this.maxEventChars);
      this.onAttempt?.(attempt);
      // One span per attempt, a child of the turn's; a no-op unless the application registered an SDK.
      const span = startAttemptSpan(request, attempt);
      try {
        const response = await call.open(this.fetchFn, withTraceparent(request, span));
        span.setAttribute("http.response.status_code", response.status);
        if (!response.ok) {
          const text = await call.readText(response, MAX_ERROR_BODY);
          throw statusError(response.status, text, parseRetryAfter(response.headers), this.apiKey);
        }
        if (!response.body) throw new AgentError(ErrorCode.UpstreamError, "upstream answered without a body", true);
        if ((response.headers.get("content-type") ?? "").includes("json")) {
          // Some gateways answer 200 with a JSON error instead of a stream; say what it said.
          const text = await call.readText(response, MAX_ERROR_BODY);
          throw jsonInsteadOfStream(text, (t) => this.redact(t));
        }
        return await consume(call.events(response.body), tracked.sink);
      } catch (err) {
        const error = this.classify(call.failure(err));
        if (!(error instanceof AgentError)) throw error; // the turn's abort reason, or a bug: as is
        span.setAttributes({ "error.type": error.code, "agentwire.error_code": error.code });
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.code });
        this.onFailure?.(error);
        const delayMs = this.retryDelay(error, attempt, tracked.produced());
        if (delayMs === undefined) throw this.finalError(error, attempt);
        this.onRetry?.({ attempt, delayMs, error });
        sink.retried?.(attempt, error.code);
        await sleep(delayMs, signal);
      } finally {
        span.end();
        call.dispose();
      }
    }
  }

  /** Turns anything thrown during an attempt into an AgentError, except the turn's abort reason. */
  private classify(err: unknown): unknown {
    if (err instanceof AgentError) return err;
    if (err instanceof CancelledTurn) return err.reason;
    // fetch rejects with a TypeError when the connection fails before a response: worth a retry.
    if (!(err instanceof TypeError)) return err;
    const detail = `${err.message}${causeOf(err)}`;
    return new AgentError(ErrorCode.UpstreamError, this.redact(`upstream request failed: ${detail}`), true);
  }

  /** The wait before the next attempt, or undefined when this failure is final. */
  private retryDelay(error: AgentError, attempt: number, produced: boolean): number | undefined {
    // Timeouts are not retried here: each attempt could spend the whole timeout again.
    if (!error.retryable || error.code === ErrorCode.UpstreamTimeout || produced) return undefined;
    if (attempt >= this.retry.maxAttempts) return undefined;
    if (error.retryAfterMs !== undefined) {
      return error.retryAfterMs <= this.retry.maxDelayMs ? error.retryAfterMs : undefined;
    }
    return jitteredBackoffMs(attempt, this.retry.baseDelayMs, this.retry.maxDelayMs, this.random);
  }

  /** Rate limits and overload always tell the caller how long to wait, even without a header. */
  private finalError(error: AgentError, attempt: number): AgentError {
    const hinted = error.code === ErrorCode.RateLimited || error.code === ErrorCode.UpstreamOverloaded;
    if (!hinted || error.retryAfterMs !== undefined) return error;
    return new AgentError(error.code, error.message, true, backoffMs(attempt, this.retry.baseDelayMs, this.retry.maxDelayMs));
  }
}

/** The span of one upstream attempt: `chat <model>` (GenAI semantic conventions), kind CLIENT, under the turn's span. */
function startAttemptSpan(request: UpstreamRequest, attempt: number): Span {
  const attributes: Attributes = { "gen_ai.operation.name": "chat", "agentwire.attempt": attempt };
  if (request.model !== undefined) attributes["gen_ai.request.model"] = request.model;
  if (request.provider !== undefined) attributes["gen_ai.provider.name"] = request.provider;
  const name = request.model !== undefined ? `chat ${request.model}` : "agentwire.upstream";
  return trace.getTracer(TRACER_NAME).startSpan(name, { kind: SpanKind.CLIENT, attributes }, request.traceContext ?? context.active());
}

/** The request with the attempt span's W3C `traceparent` (and `tracestate`) added by the global propagator (a no-op unless one is registered). */
function withTraceparent(request: UpstreamRequest, span: Span): UpstreamRequest {
  const headers = { ...request.headers };
  propagation.inject(trace.setSpan(request.traceContext ?? context.active(), span), headers);
  return { ...request, headers };
}

/** Wraps a sink to notice the first output that a retry would show twice. */
function trackOutput(sink: StepSink): { sink: StepSink; produced: () => boolean } {
  let produced = false;
  return {
    produced: () => produced,
    sink: {
      text: (delta) => {
        produced = true;
        sink.text(delta);
      },
      // Progress and usage are status, not content: restating them after a retry is harmless.
      progress: (stage, message, fraction) => sink.progress(stage, message, fraction),
      toolCallStart: (callId, name) => {
        produced = true;
        sink.toolCallStart(callId, name);
      },
      toolCallDelta: (callId, argsDelta) => {
        produced = true;
        sink.toolCallDelta(callId, argsDelta);
      },
      usage: (input, output) => sink.usage(input, output),
      retried: (attempt, code) => sink.retried?.(attempt, code),
    },
  };
}

/** A 200 with a JSON body: a provider error object is shown by its own message; anything else only in logs. */
function jsonInsteadOfStream(text: string, redact: (t: string) => string): AgentError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const info = readErrorInfo(parsed, "");
  const message = info.message ? redact(`upstream answered JSON, not a stream: ${info.message}`) : "upstream answered JSON, not a stream";
  return new AgentError(ErrorCode.UpstreamError, message, false, undefined, redact(text.slice(0, 200)));
}

/** Waits `ms`, or rejects with the signal's reason the moment it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function causeOf(err: Error): string {
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? ` (${cause.message})` : "";
}

function validate(t: UpstreamTimeouts, r: RetryPolicy): void {
  for (const [name, v] of Object.entries(t)) {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`timeouts.${name} must be a positive number, got ${v}`);
  }
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1) {
    throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${r.maxAttempts}`);
  }
  if (!Number.isFinite(r.baseDelayMs) || r.baseDelayMs < 0) throw new RangeError("retry.baseDelayMs must be >= 0");
  if (!Number.isFinite(r.maxDelayMs) || r.maxDelayMs < r.baseDelayMs) {
    throw new RangeError("retry.maxDelayMs must be a number >= retry.baseDelayMs");
  }
}
