// The SSE end of an attachment: engine frames as WHATWG event-stream text on a uWS response, with heartbeats and backpressure.
import type { Attachment, Sink } from "../engine/index.js";
import type { HttpResponse } from "./uws.js";

export interface SseSinkOptions {
  /** Interval of heartbeat comments, from the moment the stream opens (ms). */
  heartbeatMs: number;
  /** The position the client resumed from (Last-Event-ID, lastEventId or afterSeq), if any. */
  afterSeq: number | undefined;
  /** Runs once when the stream ends, whichever side ends it: the code the server closed it with, or `aborted` when the client went. */
  onEnd(code: number | "aborted"): void;
}

const HEARTBEAT = ": heartbeat\n\n";

/** Pending event text this long goes to the socket at once, mid-tick: one syscall per batch. */
const BATCH_FLUSH_CHARS = 8 * 1024;

/**
 * Written when uWS reports the socket writable again. Once an onWritable handler is registered, uWS
 * only drains its own buffer when something is written, and an empty write is a no-op.
 */
const NUDGE = ":\n";

/** How every token frame starts; the seq follows. */
const TOKEN_HEAD = '{"type":"token","seq":';

/** Every frame the engine writes starts with its type and, when logged, its seq: read them without parsing the JSON. */
const FRAME_HEAD = /^\{"type":"([a-z_]+)"(?:,"seq":(\d+))?/;

export class SseSink implements Sink {
  private attachment: Attachment | null = null;
  private ended = false;
  /**
   * Bytes handed to uWS since the last write it took whole. uWS exposes no buffered amount for HTTP
   * responses, so this is an upper bound on what it holds: it resets the moment a write (or the nudge
   * after a writable event) is accepted entirely.
   */
  private backlog = 0;
  /** Events written in this tick: they leave together in one corked write (one syscall, not one per token). */
  private pending = "";
  private scheduled = false;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly res: HttpResponse,
    private readonly options: SseSinkOptions,
  ) {
    res.onWritable(() => {
      this.writable();
      return true;
    });
    this.heartbeat = setInterval(() => this.push(HEARTBEAT), options.heartbeatMs);
    this.heartbeat.unref();
  }

  /**
   * Sends the head and the first bytes: a comment, so proxies and clients see a live response at
   * once, and the reconnect hint. Never compressed: no proxy may hold events back to fill a block.
   */
  start(headers: Record<string, string>, retryMs: number): void {
    const res = this.res;
    res.cork(() => {
      res.writeStatus("200 OK");
      res.writeHeader("content-type", "text/event-stream; charset=utf-8");
      res.writeHeader("cache-control", "no-cache, no-transform");
      res.writeHeader("x-accel-buffering", "no");
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    });
    this.push(`: agentwire event stream\nretry: ${retryMs}\n\n`);
  }

  /** Links the engine's attachment, so a close from either side detaches it. */
  bind(attachment: Attachment): void {
    // The replay inside attach() can already have ended the stream.
    if (this.ended) attachment.detach();
    else this.attachment = attachment;
  }

  write(frame: string): boolean {
    if (this.ended) return false;
    this.enqueue(this.event(frame));
    return true;
  }

  writeMany(frames: readonly string[]): boolean {
    if (this.ended) return false;
    let chunk = "";
    for (const frame of frames) chunk += this.event(frame);
    this.enqueue(chunk);
    return true;
  }

  bufferedAmount(): number {
    return this.ended ? 0 : this.backlog + this.pending.length;
  }

  /** Sends what this tick wrote, then lets the outbox continue (uWS reports no drain unless it backed up). */
  flush(): void {
    this.scheduled = false;
    const chunk = this.pending;
    this.pending = "";
    this.push(chunk);
    this.attachment?.drained();
  }

  /** Adds to this tick's batch; a full batch leaves at once, without calling back into the engine. */
  private enqueue(chunk: string): void {
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(flushSse, this);
    }
    this.pending += chunk;
    if (this.pending.length >= BATCH_FLUSH_CHARS) {
      const full = this.pending;
      this.pending = "";
      this.push(full);
    }
  }

  /** Ends the response. SSE has no close code, so a comment carries it for people and raw readers; EventSource reconnects. */
  close(code: number, reason: string): void {
    if (this.ended) return;
    const rest = this.pending;
    this.pending = "";
    this.finish(code);
    const res = this.res;
    res.cork(() => {
      if (rest) res.write(rest);
      res.write(`: close ${code} ${reason.replace(/[\r\n]/g, " ")}\n\n`);
      res.end();
    });
  }

  /** The client went away (uWS onAborted): the response is gone and must never be touched again. */
  aborted(): void {
    if (!this.ended) this.finish("aborted");
  }

  private finish(code: number | "aborted"): void {
    this.ended = true;
    this.pending = "";
    clearInterval(this.heartbeat);
    this.attachment?.detach();
    this.attachment = null;
    this.options.onEnd(code);
  }

  private push(chunk: string): void {
    // uWS answers an empty write with true without flushing anything: it must not reset the backlog.
    if (this.ended || chunk.length === 0) return;
    const res = this.res;
    let whole = false;
    res.cork(() => {
      whole = res.write(chunk);
    });
    this.backlog = whole ? 0 : this.backlog + chunk.length;
  }

  private writable(): void {
    if (this.ended) return;
    if (this.backlog > 0) this.push(NUDGE);
    this.attachment?.drained();
  }

  /** One frame as an event: `id` is the seq of logged events; ephemeral frames carry none and leave the client's position alone. */
  private event(frame: string): string {
    // Tokens are nearly every frame: their head is fixed, so only the seq's digits need finding.
    if (frame.startsWith(TOKEN_HEAD)) {
      const end = frame.indexOf(",", TOKEN_HEAD.length);
      return "id: " + frame.slice(TOKEN_HEAD.length, end) + "\nevent: token\ndata: " + frame + "\n\n";
    }
    const head = FRAME_HEAD.exec(frame);
    const type = head?.[1];
    const seq = head?.[2];
    if (type === undefined || type === "session" || type === "drain") return this.special(frame);
    return seq === undefined ? `event: ${type}\ndata: ${frame}\n\n` : `id: ${seq}\nevent: ${type}\ndata: ${frame}\n\n`;
  }

  /** Rare frames that need their fields read; they go out once per stream at most. */
  private special(frame: string): string {
    const message = JSON.parse(frame) as Record<string, unknown>;
    const type = String(message.type);
    if (type === "session") {
      // The welcome names the position the stream continues from, so a reconnect before any logged
      // event still resumes exactly: after the replayed position, or live from lastSeq.
      const exact = message.resumed === true && message.recovered === true && this.options.afterSeq !== undefined;
      const id = exact ? this.options.afterSeq : message.lastSeq;
      const welcome = { ...message, heartbeatMs: this.options.heartbeatMs };
      return `id: ${id}\nevent: session\ndata: ${JSON.stringify(welcome)}\n\n`;
    }
    if (type === "drain") {
      // EventSource waits `retry` ms before it reconnects: make that the server's own hint.
      return `retry: ${Number(message.reconnectAfterMs) || 0}\nevent: drain\ndata: ${frame}\n\n`;
    }
    const seq = typeof message.seq === "number" ? `id: ${message.seq}\n` : "";
    return `${seq}event: ${type}\ndata: ${frame}\n\n`;
  }
}

function flushSse(sink: SseSink): void {
  sink.flush();
}
