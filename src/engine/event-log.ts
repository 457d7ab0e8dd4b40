// The session's event log: gap-free seq numbers, bounded by count and by age, replayable after any seq.
import type { LoggedEvent, LoggedEventInput } from "../../protocol/index.js";
import { TextArena } from "./text-arena.js";

export interface LogEntry {
  readonly seq: number;
  readonly at: number;
  /** The event's type and turn, readable without building the event object. */
  readonly type: LoggedEvent["type"];
  readonly turn: string | undefined;
  /** The event as an object; for tokens it is built only when asked (merging for a slow reader). */
  readonly event: LoggedEvent;
  /** The event serialized once, shared by every attached client. */
  readonly frame: string;
}

/** A token's log entry: the hot path keeps the frame and the fields, not a second event object. */
class TokenEntry implements LogEntry {
  readonly type = "token";

  constructor(
    readonly seq: number,
    readonly at: number,
    readonly frame: string,
    readonly turn: string,
    readonly text: string,
  ) {}

  get event(): LoggedEvent {
    return { type: "token", seq: this.seq, turn: this.turn, text: this.text };
  }
}

/** A token's frame. Turn ids are ours (`t` and digits) and need no escaping. */
function tokenFrame(seq: number, turn: string, text: string): string {
  return `{"type":"token","seq":${seq},"turn":"${turn}","text":${JSON.stringify(text)}}`;
}

function plainEntry(seq: number, at: number, event: LoggedEvent, frame: string): LogEntry {
  return { seq, at, type: event.type, turn: "turn" in event ? event.turn : undefined, event, frame };
}

/** Every frame starts `{"type":"...","seq":N` (then usually `"turn":"..."`): read those without parsing. */
const FRAME_HEAD = /^\{"type":"([a-z_]+)","seq":\d+(?:,"turn":"([^"]*)")?/;

/** An entry read back from the log: only the frame is stored, the rest is derived when asked. */
class StoredEntry implements LogEntry {
  private parsed: LoggedEvent | null = null;

  constructor(
    readonly seq: number,
    readonly at: number,
    readonly frame: string,
  ) {}

  get type(): LoggedEvent["type"] {
    return (FRAME_HEAD.exec(this.frame)?.[1] ?? this.event.type) as LoggedEvent["type"];
  }

  get turn(): string | undefined {
    const head = FRAME_HEAD.exec(this.frame);
    return head ? head[2] : undefined;
  }

  get event(): LoggedEvent {
    this.parsed ??= JSON.parse(this.frame) as LoggedEvent;
    return this.parsed;
  }
}

export interface EventLogLimits {
  /** Entries kept at most. */
  maxEvents: number;
  /** Entries older than this are dropped (ms). */
  maxAgeMs: number;
}

export type ReplayResult = { recovered: true; entries: LogEntry[] } | { recovered: false; entries: [] };

/** What an empty log points at, so a session that never logged owns no arrays. Frozen: a push is a bug. */
const NONE: never[] = Object.freeze([]) as never[];

export class EventLog {
  /**
   * Per entry, in parallel arrays (the seq of entry `i` is `base + i`, seqs being contiguous):
   * - `items[i]`: the serialized frame, or for a token only its turn id (a shared string);
   * - `marks[i]`: for a token, the end of its text in `texts` (>= 0); otherwise `-1 - end`, the
   *   text end as of that entry, so a token's start is always the previous entry's end;
   * - `ats[i]`: when it was logged.
   * A token therefore retains no object of its own: its text lives in a few long arena strings and
   * its frame is rebuilt when read back. That keeps the garbage collector's work per token small
   * with tens of thousands of events held per session.
   */
  private items: string[] = NONE;
  private marks: number[] = NONE;
  private ats: number[] = NONE;
  /** Made with the first token. */
  private texts: TextArena | null = null;
  /** Text end before `items[0]`. */
  private baseEnd = 0;
  private base = 1;
  /**
   * Entries after this seq are not yet in the broker: count trimming keeps them (up to twice the
   * limit) so a fast owner never drops what other nodes still need. -1: nothing to protect (a
   * small integer, where Infinity would cost every session a boxed number).
   */
  private pinned = -1;
  /** Index of the oldest live entry; the arrays are compacted lazily so trimming stays O(1) amortized. */
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
    return this.size > 0 ? this.base + this.head : this.last + 1;
  }

  get size(): number {
    return this.items.length - this.head;
  }

  append(input: LoggedEventInput): LogEntry {
    if (input.type === "token" && input.from === undefined) return this.appendToken(input.turn, input.text);
    const seq = this.last + 1;
    // Key order puts `type` and `seq` first in every frame, which keeps the wire readable.
    const { type, ...rest } = input;
    const event = { type, seq, ...rest } as LoggedEvent;
    const frame = JSON.stringify(event);
    const at = this.now();
    this.storeFrame(seq, frame, at);
    return plainEntry(seq, at, event, frame);
  }

  /** The hot path: one frame per token, built without a generic serializer pass. */
  appendToken(turn: string, text: string): LogEntry {
    const seq = this.last + 1;
    const frame = tokenFrame(seq, turn, text);
    const at = this.now();
    this.storeToken(seq, turn, text, at);
    return new TokenEntry(seq, at, frame, turn, text);
  }

  /**
   * Adds an event whose seq was assigned elsewhere (a replica of another node's log, or a log
   * reloaded on takeover). Returns null, adding nothing, unless it is exactly the next seq; an
   * empty log accepts any later seq (it starts where the stored log is).
   */
  insert(seq: number, frame: string, event: LoggedEvent): LogEntry | null {
    if (this.size > 0 ? seq !== this.last + 1 : seq <= this.last) return null;
    const at = this.now();
    if (event.type === "token" && event.from === undefined) {
      this.storeToken(seq, event.turn, event.text, at);
      return new TokenEntry(seq, at, frame, event.turn, event.text);
    }
    this.storeFrame(seq, frame, at);
    return plainEntry(seq, at, event, frame);
  }

  /** Forgets everything and continues after `lastSeq`: the events before it cannot be had anymore. */
  reset(lastSeq: number): void {
    this.clear(lastSeq + 1);
    this.last = lastSeq;
  }

  /** Entries with seq > afterSeq (at most `limit`), or `recovered: false` when some were already dropped. */
  after(afterSeq: number, limit = Number.POSITIVE_INFINITY): ReplayResult {
    this.trim();
    if (afterSeq > this.last) return { recovered: false, entries: [] };
    if (afterSeq < this.firstSeq - 1) return { recovered: false, entries: [] };
    const start = this.head + (afterSeq - (this.firstSeq - 1));
    const end = Math.min(this.items.length, start + limit);
    const entries: LogEntry[] = [];
    for (let i = start; i < end; i++) entries.push(this.entryAt(i));
    return { recovered: true, entries };
  }

  /** Marks everything up to `seq` as stored elsewhere; later entries are kept while trimming allows. */
  pin(seq: number): void {
    this.pinned = seq === Number.POSITIVE_INFINITY ? -1 : seq;
  }

  /** Drops entries beyond the count limit or older than the age limit, as of `now`. */
  trim(now = this.now()): void {
    const oldest = now - this.limits.maxAgeMs;
    const { maxEvents } = this.limits;
    const head = this.head;
    const pinned = this.pinned;
    while (this.size > maxEvents && (pinned < 0 || this.base + this.head <= pinned || this.size > maxEvents * 2)) this.head++;
    while (this.size > 0 && (this.ats[this.head] as number) < oldest) this.head++;
    if (this.head === head) return;
    this.texts?.dropBefore(this.endBefore(this.head));
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.baseEnd = this.endBefore(this.head);
      this.items = this.items.slice(this.head);
      this.marks = this.marks.slice(this.head);
      this.ats = this.ats.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }

  private entryAt(i: number): LogEntry {
    const seq = this.base + i;
    const at = this.ats[i] as number;
    const item = this.items[i] as string;
    const mark = this.marks[i] as number;
    if (mark < 0) return new StoredEntry(seq, at, item);
    const text = (this.texts as TextArena).slice(this.endBefore(i), mark);
    return new TokenEntry(seq, at, tokenFrame(seq, item, text), item, text);
  }

  /** The text end before entry `i`: where a token at `i` starts. */
  private endBefore(i: number): number {
    if (i === 0) return this.baseEnd;
    const mark = this.marks[i - 1] as number;
    return mark >= 0 ? mark : -1 - mark;
  }

  private storeFrame(seq: number, frame: string, at: number): void {
    this.startAt(seq);
    this.items.push(frame);
    this.marks.push(-1 - (this.texts?.end ?? this.baseEnd));
    this.stored(seq, at);
  }

  private storeToken(seq: number, turn: string, text: string, at: number): void {
    this.startAt(seq);
    this.items.push(turn);
    this.texts ??= new TextArena(this.baseEnd);
    this.marks.push(this.texts.add(text));
    this.stored(seq, at);
  }

  /** An empty log starts wherever it is told (a replica joins a stored log midway). */
  private startAt(seq: number): void {
    if (this.size === 0) this.clear(seq);
  }

  private clear(base: number): void {
    this.items = [];
    this.marks = [];
    this.ats = [];
    this.texts?.clear();
    this.baseEnd = this.texts?.end ?? this.baseEnd;
    this.head = 0;
    this.base = base;
  }

  private stored(seq: number, at: number): void {
    this.ats.push(at);
    this.last = seq;
    this.trim(at);
  }
}
