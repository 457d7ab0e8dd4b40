// Incremental server-sent events parser (WHATWG "event stream interpretation"): the one the server reads model
// providers' streams with, the tests read agentwire's own streams with, and a client without EventSource can use.
// Depends on nothing but TextDecoder, so it runs in Node and in browsers alike.

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, or `"message"` when the event had none. */
  type: string;
  /** The `data:` lines joined with `\n`. An event without any `data:` line is not dispatched. */
  data: string;
  /** The last event id seen on the stream so far (it persists across events, as in the spec). */
  id: string;
  /** The `id:` field of this event's own block, when it had one (agentwire's `seq`). */
  ownId?: string;
  /** The reconnection time set by the latest valid `retry:` field, if any. */
  retry: number | undefined;
}

/** Thrown when one line or one event's data grows past the parser's bound: the stream is not trusted further. */
export class SseEventTooLarge extends Error {
  constructor(readonly maxChars: number) {
    super(`event stream line or event exceeds ${maxChars} characters`);
    this.name = "SseEventTooLarge";
  }
}

/** Default bound on one line and on one event's joined data (characters). */
export const SSE_MAX_EVENT_CHARS = 1024 * 1024;

export interface SseParserOptions {
  /** Longest line and longest joined event data (characters). @default SSE_MAX_EVENT_CHARS */
  maxChars?: number;
  /** Called with the text after `:` of every comment line (keep-alives, padding), in stream order. */
  onComment?: (text: string) => void;
  /** Called with each event as it completes, in stream order with the comments; `push` then returns none. */
  onEvent?: (event: SseEvent) => void;
}

/**
 * Push-style parser: feed byte chunks as they arrive, get the events they complete.
 * Chunks may split anywhere: inside a line, between `\r` and `\n`, inside a UTF-8 character.
 * A line or an event longer than `maxChars` throws SseEventTooLarge instead of buffering it whole.
 */
export class SseParser {
  // A streaming decoder keeps the first bytes of a split multi-byte character until the rest arrives;
  // it also drops a leading BOM, which the spec says to ignore.
  private readonly decoder = new TextDecoder("utf-8");
  /** The unterminated tail of the last chunk. */
  private partial = "";
  /** The previous text ended with `\r`: a `\n` that starts the next text belongs to that line end. */
  private skipLeadingLf = false;
  private data = "";
  private hasData = false;
  private eventType = "";
  private ownId: string | undefined;
  private lastId = "";
  private retryMs: number | undefined;
  private ended = false;
  private readonly maxChars: number;
  private readonly onComment: ((text: string) => void) | undefined;
  private readonly onEvent: ((event: SseEvent) => void) | undefined;

  constructor(options: SseParserOptions = {}) {
    this.maxChars = options.maxChars ?? SSE_MAX_EVENT_CHARS;
    this.onComment = options.onComment;
    this.onEvent = options.onEvent;
  }

  /** The stream's last event ID so far: what a reconnect sends as `Last-Event-ID`. */
  get lastEventId(): string {
    return this.lastId;
  }

  /** The reconnection time the stream asked for with `retry:`, if it did. */
  get retry(): number | undefined {
    return this.retryMs;
  }

  /** Parses a chunk of bytes; returns the events it completed, in order. */
  push(chunk: Uint8Array): SseEvent[] {
    return this.pushText(this.decoder.decode(chunk, { stream: true }));
  }

  /** Parses already-decoded text (a reader that decodes itself); do not mix with `push` on one stream. */
  pushText(text: string): SseEvent[] {
    if (this.ended) throw new Error("SseParser: push after end");
    const out: SseEvent[] = [];
    this.feed(text, out);
    return out;
  }

  /**
   * Ends the stream. Per the spec an event not terminated by a blank line is discarded, so this
   * dispatches nothing new; it flushes the decoder (a truncated character becomes U+FFFD).
   */
  end(): SseEvent[] {
    if (this.ended) return [];
    const out: SseEvent[] = [];
    this.feed(this.decoder.decode(), out);
    this.ended = true;
    this.partial = "";
    this.data = "";
    this.hasData = false;
    this.eventType = "";
    this.ownId = undefined;
    return out;
  }

  private feed(text: string, out: SseEvent[]): void {
    let start = 0;
    if (this.skipLeadingLf && text.length > 0) {
      if (text.charCodeAt(0) === 10) start = 1;
      this.skipLeadingLf = false;
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.partial + text.slice(start, i);
      this.partial = "";
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.skipLeadingLf = true;
        }
      }
      start = i + 1;
      this.line(line, out);
    }
    if (start < text.length) this.partial += text.slice(start);
    if (this.partial.length > this.maxChars) throw new SseEventTooLarge(this.maxChars);
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === "") {
      this.dispatch(out);
      return;
    }
    if (line.charCodeAt(0) === 58) {
      // ":" comment, used as keep-alive
      this.onComment?.(line.slice(1));
      return;
    }
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + (line.charCodeAt(colon + 1) === 32 ? 2 : 1));
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        if (this.data.length > this.maxChars) throw new SseEventTooLarge(this.maxChars);
        break;
      case "id":
        if (!value.includes("\u0000")) {
          this.lastId = value;
          this.ownId = value;
        }
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(out: SseEvent[]): void {
    // The spec dispatches a lone `data:` line (empty string data) but not an event with no data line.
    if (this.hasData) {
      const event: SseEvent = { type: this.eventType || "message", data: this.data, id: this.lastId, retry: this.retryMs };
      if (this.ownId !== undefined) event.ownId = this.ownId;
      if (this.onEvent) this.onEvent(event);
      else out.push(event);
    }
    this.ownId = undefined;
    this.data = "";
    this.hasData = false;
    this.eventType = "";
  }
}

/** A byte source: a WHATWG `ReadableStream` (e.g. a fetch body) or any async iterable of chunks. */
export type ByteSource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * Yields the events of a byte stream. Stopping early (break, return, throw) cancels the source,
 * which for a fetch body closes the connection.
 */
export async function* parseSseStream(source: ByteSource, options: SseParserOptions = {}): AsyncGenerator<SseEvent, void, undefined> {
  const parser = new SseParser(options);
  if (isReadableStream(source)) {
    const reader = source.getReader();
    let done = false;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          done = true;
          yield* parser.end();
          return;
        }
        yield* parser.push(r.value);
      }
    } finally {
      if (!done) reader.cancel().catch(() => {});
    }
  }
  for await (const chunk of source) yield* parser.push(chunk);
  yield* parser.end();
}

function isReadableStream(source: ByteSource): source is ReadableStream<Uint8Array> {
  return typeof (source as ReadableStream<Uint8Array>).getReader === "function";
}
