// Per-attachment outbox: writes straight through while the client keeps up; while it lags, merges
// token deltas and keeps only the newest progress, and closes past a hard byte cap.
import { CloseCode, type LoggedEvent, type ProgressEvent, type TokenEvent } from "@agentwire/protocol";
import type { Sink } from "./sink.js";
import { frozenEmpty } from "./empty.js";
import type { EngineTelemetry } from "./telemetry.js";

export interface OutboxLimits {
  /** Above this many buffered bytes the client counts as lagging and frames queue here. */
  softBytes: number;
  /** Queue + socket buffer above this closes the link with `SlowConsumer` (reconnect and resume). */
  hardBytes: number;
  /** Where a lagging outbox is watched for stalls (shared, like the limits); absent: only the hard cap closes it. */
  watch?: LagWatch;
  /** Counts merges, slow-consumer closes and how much lag episodes held (never a write that keeps up). @default none */
  telemetry?: EngineTelemetry;
}

/**
 * Watches lagging outboxes with one timer for the whole node: one that takes nothing (no drain from
 * its socket) for `timeoutMs` is closed with `SlowConsumer`, even when no new event would push it
 * past the hard cap. Only lagging links are visited, so links that keep up cost nothing here.
 */
export class LagWatch {
  private readonly lagging = new Set<Outbox>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly timeoutMs: number,
    readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.lagging.size;
  }

  add(outbox: Outbox): void {
    this.lagging.add(outbox);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), Math.max(50, Math.min(1000, this.timeoutMs / 4)));
      this.timer.unref();
    }
  }

  remove(outbox: Outbox): void {
    this.lagging.delete(outbox);
    if (this.lagging.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Closes every watched outbox that made no progress for `timeoutMs`; returns how many. */
  check(): number {
    const now = this.now();
    let closed = 0;
    for (const outbox of this.lagging) {
      if (outbox.stalledFor(now) >= this.timeoutMs) {
        outbox.closeSlow();
        closed++;
      }
    }
    return closed;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.lagging.clear();
  }
}

interface Queued {
  /** Serialized frame; null after a merge changed the event (serialized at flush). */
  frame: string | null;
  /** Set for logged events, which may merge; ephemeral frames carry none. */
  event: LoggedEvent | null;
  bytes: number;
  /**
   * A merged token's text: flat chunks, each MERGE_JOIN deltas joined, then the newest deltas.
   * `a + b` per token would keep a rope node (about 32 bytes) for every 5-character token, several
   * times what the cap counts; rejoining the whole text now and then would copy it over and over.
   */
  pieces: { chunks: string[]; tail: string[] } | null;
}

/** Deltas of merged text joined into one flat chunk at a time. */
const MERGE_JOIN = 256;

/** The queue of a client that keeps up: no array of its own. Frozen: a push is a bug. */
const EMPTY = frozenEmpty<Queued>();

export class Outbox {
  private queue: Queued[] = EMPTY;
  private queuedBytes = 0;
  private closed = false;
  /** Frames merged away since creation (observability and tests). */
  merged = 0;
  /** Highest queued + socket-buffered bytes seen while lagging: what this client cost us at worst. */
  peakBytes = 0;
  /**
   * Set while watched as lagging: when the socket last took something (or lagging began) and what it
   * buffered at the last look. An object made only then, so a link that keeps up carries one field.
   */
  private lag: { since: number; buffered: number; peak: number } | null = null;

  constructor(
    private readonly sink: Sink,
    private readonly limits: OutboxLimits,
  ) {}

  /** How long this outbox has lagged without its socket taking anything (ms); 0 when it keeps up. */
  stalledFor(now: number): number {
    const lag = this.lag;
    if (!lag) return 0;
    const buffered = this.sink.bufferedAmount();
    if (this.queue.length === 0 && buffered < this.limits.softBytes) {
      this.unwatch();
      return 0;
    }
    // A slow reader that reads is not stalled: its buffer shrank since the last look (a flush that
    // refilled it counts as progress too, see `flush`).
    if (buffered < lag.buffered) lag.since = now;
    lag.buffered = buffered;
    return now - lag.since;
  }

  /** Starts watching this outbox as lagging (the replay also calls it when the socket stops taking). */
  watchLag(): void {
    const watch = this.limits.watch;
    if (this.lag || !watch || this.closed) return;
    const buffered = this.sink.bufferedAmount();
    this.lag = { since: watch.now(), buffered, peak: this.queuedBytes + buffered };
    watch.add(this);
  }

  private unwatch(): void {
    if (!this.lag) return;
    this.limits.telemetry?.lagEnded(this.lag.peak);
    this.lag = null;
    this.limits.watch?.remove(this);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get pendingBytes(): number {
    return this.queuedBytes;
  }

  get pendingFrames(): number {
    return this.queue.length;
  }

  /** True when a write now would go straight to the socket. */
  get writable(): boolean {
    return !this.closed && this.queue.length === 0 && this.sink.bufferedAmount() < this.limits.softBytes;
  }

  /** Writes frames that need no merging (a replay batch) straight through, in one go. */
  writeBatch(frames: readonly string[]): void {
    if (this.closed) return;
    if (!this.sink.writeMany(frames)) this.closed = true;
  }

  /** Ends the link from the engine's side because the client fell too far behind. */
  closeSlow(): void {
    this.overflow();
  }

  /** Queues or writes one frame. `entry` is given for logged events so lagging deltas can merge. */
  push(frame: string, entry: { readonly event: LoggedEvent } | null): void {
    if (this.closed) return;
    if (this.queue.length === 0 && this.sink.bufferedAmount() < this.limits.softBytes) {
      if (!this.sink.write(frame)) this.closed = true;
      return;
    }
    // Only a lagging client needs the event object (to merge); the fast path above never builds it.
    this.enqueue(frame, entry ? entry.event : null);
    this.watchLag();
    const buffered = this.sink.bufferedAmount();
    const held = this.queuedBytes + buffered;
    if (held > this.peakBytes) this.peakBytes = held;
    if (this.lag && held > this.lag.peak) this.lag.peak = held;
    if (held > this.limits.hardBytes) this.overflow();
    else if (buffered < this.limits.softBytes) this.flush();
  }

  /** Writes what the socket will take; call when the transport reports the socket drained. */
  flush(): void {
    // Loop: a batch that the kernel takes whole leaves nothing buffered, and then no drain event comes.
    while (!this.closed && this.queue.length > 0) {
      let budget = this.limits.softBytes - this.sink.bufferedAmount();
      if (budget <= 0) return;
      const batch: string[] = [];
      while (this.queue.length > 0 && budget > 0) {
        const item = this.queue.shift() as Queued;
        const frame = item.frame ?? serialize(item);
        this.queuedBytes -= item.bytes;
        budget -= frame.length;
        batch.push(frame);
      }
      // The socket took enough to fall below the soft limit: the reader is reading.
      if (this.lag && this.limits.watch) this.lag.since = this.limits.watch.now();
      if (!this.sink.writeMany(batch)) this.closed = true;
    }
  }

  /** Drops what is queued but keeps the link (the client asked to replay from a position). */
  reset(): void {
    this.queue = EMPTY;
    this.queuedBytes = 0;
  }

  /** Drops everything queued; the attachment is gone. */
  close(): void {
    this.closed = true;
    this.queue = EMPTY;
    this.queuedBytes = 0;
    this.unwatch();
  }

  private enqueue(frame: string, event: LoggedEvent | null): void {
    if (event?.type === "token" && this.mergeToken(event)) return;
    if (event?.type === "progress") this.dropOlderProgress(event);
    if (this.queue === EMPTY) this.queue = [];
    this.queue.push({ frame, event, bytes: frame.length, pieces: null });
    this.queuedBytes += frame.length;
  }

  private mergeToken(event: TokenEvent): boolean {
    const tail = this.queue[this.queue.length - 1];
    if (!tail || tail.event?.type !== "token" || tail.event.turn !== event.turn) return false;
    const prev = tail.event;
    // The first merge makes the item's own event; later ones only move its seq (no object per token).
    if (tail.pieces) prev.seq = event.seq;
    else {
      tail.pieces = { chunks: [], tail: [prev.text] };
      tail.event = { type: "token", seq: event.seq, turn: event.turn, text: "", from: prev.from ?? prev.seq };
    }
    appendPiece(tail, event.text);
    tail.frame = null;
    tail.bytes += event.text.length;
    this.queuedBytes += event.text.length;
    this.merged++;
    this.limits.telemetry?.merged();
    return true;
  }

  /** Progress is state, not history: a lagging client only needs the newest one of a turn. */
  private dropOlderProgress(event: ProgressEvent): void {
    const index = this.queue.findIndex((q) => q.event?.type === "progress" && q.event.turn === event.turn);
    if (index < 0) return;
    const [removed] = this.queue.splice(index, 1);
    this.queuedBytes -= (removed as Queued).bytes;
    this.merged++;
    this.limits.telemetry?.merged();
    // The removal may leave two token frames of one turn side by side: merge them too.
    const before = this.queue[index - 1];
    const after = this.queue[index];
    if (before?.event?.type === "token" && after?.event?.type === "token" && before.event.turn === after.event.turn) {
      const from = before.event.from ?? before.event.seq;
      const seq = after.event.seq;
      for (const piece of after.pieces ? [...after.pieces.chunks, ...after.pieces.tail] : [after.event.text]) appendPiece(before, piece);
      before.event = { type: "token", seq, turn: after.event.turn, text: "", from };
      before.frame = null;
      before.bytes += after.bytes;
      this.queue.splice(index, 1);
      this.merged++;
      this.limits.telemetry?.merged();
    }
  }

  private overflow(): void {
    if (!this.closed) this.limits.telemetry?.slowConsumerClosed();
    this.close();
    this.sink.close(CloseCode.SlowConsumer, "slow_consumer");
  }
}

/** Adds text to a queued token's pieces (starting them from its own text), joining the newest into a chunk now and then. */
function appendPiece(item: Queued, piece: string): void {
  const pieces = (item.pieces ??= { chunks: [], tail: [(item.event as TokenEvent).text] });
  pieces.tail.push(piece);
  if (pieces.tail.length >= MERGE_JOIN) {
    pieces.chunks.push(pieces.tail.join(""));
    pieces.tail = [];
  }
}

/** The frame of a queued item whose event a merge changed. */
function serialize(item: Queued): string {
  const event = item.event as LoggedEvent;
  if (item.pieces && event.type === "token") return JSON.stringify({ ...event, text: item.pieces.chunks.join("") + item.pieces.tail.join("") });
  return JSON.stringify(event);
}
