// The session's event log: gap-free seq numbers, bounded by count and by age, replayable after any seq.
import type { LoggedEvent, LoggedEventInput } from "../../protocol/index.js";

export interface LogEntry {
  readonly seq: number;
  readonly at: number;
  readonly event: LoggedEvent;
  /** The event serialized once, shared by every attached client. */
  readonly frame: string;
}

export interface EventLogLimits {
  /** Entries kept at most. */
  maxEvents: number;
  /** Entries older than this are dropped (ms). */
  maxAgeMs: number;
}

export type ReplayResult = { recovered: true; entries: LogEntry[] } | { recovered: false; entries: [] };

export class EventLog {
  private entries: LogEntry[] = [];
  /**
   * Entries after this seq are not yet in the broker: count trimming keeps them (up to twice the
   * limit) so a fast owner never drops what other nodes still need. Infinity: nothing to protect.
   */
  private pinned = Number.POSITIVE_INFINITY;
  /** Index of the oldest live entry; the array is compacted lazily so trimming stays O(1) amortized. */
  private head = 0;
  private last = 0;

  constructor(
    private readonly limits: EventLogLimits,
    private readonly now: () => number = Date.now,
  ) {}

  get lastSeq(): number {
    return this.last;
  }

  /** Oldest seq still held, or lastSeq + 1 when the log is empty. */
  get firstSeq(): number {
    const first = this.entries[this.head];
    return first ? first.seq : this.last + 1;
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  append(input: LoggedEventInput): LogEntry {
    if (input.type === "token" && input.from === undefined) return this.appendToken(input.turn, input.text);
    const seq = ++this.last;
    // Key order puts `type` and `seq` first in every frame, which keeps the wire readable.
    const { type, ...rest } = input;
    const event = { type, seq, ...rest } as LoggedEvent;
    return this.push({ seq, at: this.now(), event, frame: JSON.stringify(event) });
  }

  /** The hot path: one frame per token, built without a generic serializer pass. Turn ids need no escaping. */
  appendToken(turn: string, text: string): LogEntry {
    const seq = ++this.last;
    const frame = `{"type":"token","seq":${seq},"turn":"${turn}","text":${JSON.stringify(text)}}`;
    return this.push({ seq, at: this.now(), event: { type: "token", seq, turn, text }, frame });
  }

  private push(entry: LogEntry): LogEntry {
    this.entries.push(entry);
    this.trim(entry.at);
    return entry;
  }

  /**
   * Adds an event whose seq was assigned elsewhere (a replica of another node's log, or a log
   * reloaded on takeover). Returns false, adding nothing, unless it is exactly the next seq; an
   * empty log accepts any seq (it starts where the stored log is).
   */
  insert(seq: number, frame: string, event: LoggedEvent): LogEntry | null {
    if (this.size > 0 ? seq !== this.last + 1 : seq <= this.last) return null;
    this.last = seq;
    const entry: LogEntry = { seq, at: this.now(), event, frame };
    this.entries.push(entry);
    this.trim();
    return entry;
  }

  /** Forgets everything and continues after `lastSeq`: the events before it cannot be had anymore. */
  reset(lastSeq: number): void {
    this.entries = [];
    this.head = 0;
    this.last = lastSeq;
  }

  /** Entries with seq > afterSeq (at most `limit`), or `recovered: false` when some were already dropped. */
  after(afterSeq: number, limit = Number.POSITIVE_INFINITY): ReplayResult {
    this.trim();
    if (afterSeq > this.last) return { recovered: false, entries: [] };
    if (afterSeq < this.firstSeq - 1) return { recovered: false, entries: [] };
    const start = this.head + (afterSeq - (this.firstSeq - 1));
    const end = Math.min(this.entries.length, start + limit);
    return { recovered: true, entries: this.entries.slice(start, end) };
  }

  /** Marks everything up to `seq` as stored elsewhere; later entries are kept while trimming allows. */
  pin(seq: number): void {
    this.pinned = seq;
  }

  /** Drops entries beyond the count limit or older than the age limit, as of `now`. */
  trim(now = this.now()): void {
    const oldest = now - this.limits.maxAgeMs;
    const { maxEvents } = this.limits;
    while (this.size > maxEvents && ((this.entries[this.head] as LogEntry).seq <= this.pinned || this.size > maxEvents * 2)) this.head++;
    while (this.size > 0 && (this.entries[this.head] as LogEntry).at < oldest) this.head++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
