// An SSE test client over fetch: parses the stream with the shared parser and records every event and comment with its arrival time.
import type { ServerMessage } from "@agentwire/protocol";
import { SseParser as StreamParser } from "@agentwire/protocol/sse";

export interface SseEvent {
  /** The `id` field of this event's own block, when it had one. */
  id: string | undefined;
  /** The stream's last event ID after this event, as an EventSource would report it. */
  lastEventId: string;
  event: string;
  data: string;
  /** performance.now() when the event's closing blank line arrived. */
  at: number;
}

export interface SseComment {
  text: string;
  at: number;
}

/**
 * The shared event-stream parser (`@agentwire/protocol/sse`), with each event and comment stamped with its arrival
 * time: feed it text as it arrives.
 */
export class SseParser {
  private readonly parser: StreamParser;
  private at = 0;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    onComment: (comment: SseComment) => void = () => {},
  ) {
    // Tests read streams far larger than one event; the per-event bound is the server's concern here.
    // Events and comments come out in stream order (a close comment after the events before it).
    this.parser = new StreamParser({
      maxChars: Number.MAX_SAFE_INTEGER,
      onComment: (text) => onComment({ text, at: this.at }),
      onEvent: (e) => this.onEvent({ id: e.ownId, lastEventId: e.id, event: e.type, data: e.data, at: this.at }),
    });
  }

  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  get retry(): number | null {
    return this.parser.retry ?? null;
  }

  feed(text: string, at = performance.now()): void {
    this.at = at;
    this.parser.pushText(text);
  }
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: SseComment[] = [];
  /** The data of every event, parsed as a server message. */
  readonly messages: ServerMessage[] = [];
  readonly parser: SseParser;
  ended = false;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  private constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {
    this.parser = new SseParser(
      (event) => {
        this.events.push(event);
        this.messages.push(JSON.parse(event.data) as ServerMessage);
        this.wake();
      },
      (comment) => {
        this.comments.push(comment);
        this.wake();
      },
    );
  }

  /** Opens the stream; resolves once the response head arrived (rejects on a non-200 answer). */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const controller = new AbortController();
    const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: controller.signal });
    if (response.status !== 200 || !response.body) {
      const body = await response.text();
      throw Object.assign(new Error(`HTTP ${response.status}: ${body}`), { status: response.status, body });
    }
    const client = new SseClient(response, controller);
    void client.read(response.body);
    return client;
  }

  static url(base: string, s: { sessionId: string; token: string }, query = ""): string {
    return `${base}/v1/sessions/${s.sessionId}/events?token=${s.token}${query ? `&${query}` : ""}`;
  }

  /** Resolves once `predicate` holds (checked on every arrival). */
  waitUntil(predicate: () => boolean, label = "condition", timeoutMs = 10_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}; last events ${JSON.stringify(this.events.slice(-3))}`)), timeoutMs);
      this.waiters.push({
        check: predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async next<T extends ServerMessage["type"]>(type: T, where: (m: Extract<ServerMessage, { type: T }>) => boolean = () => true): Promise<Extract<ServerMessage, { type: T }>> {
    type M = Extract<ServerMessage, { type: T }>;
    let found: M | undefined;
    let scanned = 0;
    await this.waitUntil(() => {
      for (; scanned < this.messages.length && !found; scanned++) {
        const m = this.messages[scanned] as ServerMessage;
        if (m.type === type && where(m as M)) found = m as M;
      }
      return found !== undefined;
    }, `a ${type} event`);
    return found as M;
  }

  waitForTurnEnd(turn?: string) {
    return this.next("turn_end", (m) => turn === undefined || m.turn === turn);
  }

  waitEnded(): Promise<void> {
    return this.waitUntil(() => this.ended, "the stream to end");
  }

  /** Drops the connection from the client side. */
  close(): void {
    this.controller.abort();
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) this.parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      // An abort or a cut connection: the stream is over either way.
    }
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}

/** Waits for server-side state the client cannot observe (a detach after a disconnect), checking every few ms. */
export async function eventually(predicate: () => boolean | Promise<boolean>, label: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await predicate())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** POSTs one client message the way an SSE client sends it; returns the status and the parsed body. */
export async function postMessage(base: string, s: { sessionId: string; token: string }, message: unknown): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${base}/v1/sessions/${s.sessionId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
    body: typeof message === "string" ? message : JSON.stringify(message),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}
