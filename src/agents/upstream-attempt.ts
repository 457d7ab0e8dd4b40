// One HTTP attempt to an upstream: its abort controller, the phase timers, and reading the body as SSE.
import type { Context } from "@opentelemetry/api";
import { ErrorCode } from "@agentwire/protocol";
import { AgentError } from "../engine/agent.js";
import { type SseEvent, SseEventTooLarge, SseParser } from "@agentwire/protocol/sse";

/** The phase timers of one attempt (ms). */
export interface UpstreamTimeouts {
  /**
   * From sending the request until the status line and headers arrive (connect, TLS, and the
   * upstream accepting the request).
   * @default 15000
   */
  connectMs: number;
  /**
   * From the headers until the first body byte (time to first token, long prompts included).
   * @default 60000
   */
  firstByteMs: number;
  /**
   * Longest gap between two body chunks once the stream has started.
   * @default 30000
   */
  idleMs: number;
}

/** One request to send; `body` is the JSON text. */
export interface UpstreamRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** The turn's trace context (StepRequest.traceContext): each attempt's span is its child, and its `traceparent` is sent. */
  traceContext?: Context;
  /** For the attempt's span: `chat <model>`, `gen_ai.request.model`. */
  model?: string;
  /** For the attempt's span: `gen_ai.provider.name` (`openai`, `anthropic`). */
  provider?: string;
}

/** Marks an abort caused by the turn's own signal, so it is rethrown untouched. */
export class CancelledTurn {
  constructor(readonly reason: unknown) {}
}

/**
 * One HTTP attempt: its own AbortController fed by the turn's signal and by the phase timers.
 * Aborting it aborts fetch, which destroys the socket, so the upstream stops generating.
 */
export class Attempt {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onTurnAbort = (): void => this.controller.abort(new CancelledTurn(this.turn.reason));

  constructor(
    private readonly turn: AbortSignal,
    private readonly timeouts: UpstreamTimeouts,
    /** Bound on one SSE line or event from the upstream (characters). */
    private readonly maxEventChars?: number,
  ) {
    if (turn.aborted) this.onTurnAbort();
    else turn.addEventListener("abort", this.onTurnAbort, { once: true });
  }

  async open(fetchFn: typeof fetch, request: UpstreamRequest): Promise<Response> {
    this.arm("response headers", this.timeouts.connectMs);
    try {
      return await fetchFn(request.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream", ...request.headers },
        body: request.body,
        signal: this.controller.signal,
      });
    } finally {
      this.disarm();
    }
  }

  /** Reads up to `limit` bytes of a (small, error) body as text. */
  async readText(response: Response, limit: number): Promise<string> {
    if (!response.body) return "";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let bytes = 0;
    try {
      this.arm("error body", this.timeouts.firstByteMs);
      for (;;) {
        const r = await reader.read();
        if (r.done) return text + decoder.decode();
        bytes += r.value.byteLength;
        text += decoder.decode(r.value, { stream: true });
        if (bytes >= limit) return text;
      }
    } finally {
      this.disarm();
      reader.cancel().catch(() => {});
    }
  }

  /** The body's SSE events, with the first-byte and idle timers armed around every read. */
  async *events(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent, void, undefined> {
    const reader = body.getReader();
    const parser = new SseParser({ maxChars: this.maxEventChars });
    let first = true;
    let done = false;
    try {
      for (;;) {
        this.arm(first ? "first byte" : "next chunk", first ? this.timeouts.firstByteMs : this.timeouts.idleMs);
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (err) {
          if (this.controller.signal.aborted) throw err;
          // The connection dropped mid-stream: end the events; the consumer sees no end marker.
          done = true;
          return;
        } finally {
          this.disarm();
        }
        if (r.done) {
          done = true;
          yield* parser.end();
          return;
        }
        first = false;
        let events: SseEvent[];
        try {
          events = parser.push(r.value);
        } catch (err) {
          if (err instanceof SseEventTooLarge) throw new AgentError(ErrorCode.UpstreamError, `upstream sent an event larger than ${err.maxChars} characters`);
          throw err;
        }
        for (const event of events) {
          // One chunk can hold many events: stop between them, not only between reads, on cancel.
          if (this.controller.signal.aborted) throw this.controller.signal.reason;
          yield event;
        }
      }
    } finally {
      if (!done) {
        // Stopped early (end marker seen, error, cancel): close the connection now.
        reader.cancel().catch(() => {});
        this.controller.abort();
      }
    }
  }

  /** What to report for an error thrown during this attempt: a timeout or cancel beats the symptom. */
  failure(err: unknown): unknown {
    if (this.turn.aborted) return new CancelledTurn(this.turn.reason);
    const reason: unknown = this.controller.signal.aborted ? this.controller.signal.reason : undefined;
    if (reason instanceof AgentError) return reason;
    return err;
  }

  dispose(): void {
    this.disarm();
    this.turn.removeEventListener("abort", this.onTurnAbort);
  }

  private arm(phase: string, ms: number): void {
    this.disarm();
    this.timer = setTimeout(() => {
      this.controller.abort(new AgentError(ErrorCode.UpstreamTimeout, `upstream sent no ${phase} within ${ms} ms`, true));
    }, ms);
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
