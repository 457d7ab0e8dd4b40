// The session's event log: gap-free seq numbers, bounded by count, bytes and age, replayable after any seq.
import type { LoggedEvent, LoggedEventInput } from "@agentwire/protocol";
import { TextArena } from "./text-arena.js";
import { frozenEmpty } from "./empty.js";

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
  /**
   * Characters of frames and token text kept at most, counting ENTRY_OVERHEAD per entry (the
   * newest entry always stays). Entries not yet stored elsewhere may hold up to twice this.
   */
  maxBytes: number;
  /** Entries older than this are dropped (ms). */
  maxAgeMs: number;
}

export type ReplayResult = { recovered: true; entries: LogEntry[] } | { recovered: false; entries: [] };

/** What an empty log points at, so a session that never logged owns no storage. Frozen: a write is a bug. */
const NO_ITEMS = frozenEmpty<string | undefined>();
const NO_NUMBERS = new Float64Array(0);
/** Ring capacity of a log's first event; it doubles when full. */
const FIRST_CAPACITY = 16;
/** What one entry costs beyond its text in the byte budget: its ring slots and their share of the ring. */
export const ENTRY_OVERHEAD = 32;

export class EventLog {
  /**
   * A ring of entries, oldest at `start`, in parallel arrays (seqs are contiguous: the oldest is
   * `last - count + 1`):
   * - `items[i]`: the serialized frame, or for a token only its turn id (a shared string);
   * - `marks[i]`: for a token, the end of its text in `texts` (>= 0); otherwise `-1 - end`, the
   *   text end as of that entry, so a token's start is always the previous entry's end;
   * - `ats[i]`: when it was logged.
   * A token therefore retains no object of its own: its text lives in a few long arena strings and
   * its frame is rebuilt when read back. The numbers sit in typed arrays the garbage collector
   * never scans, and a full ring reuses its slots, so appending allocates nothing to keep.
   */
  private items = NO_ITEMS;
  private marks = NO_NUMBERS;
  private ats = NO_NUMBERS;
  /** Capacity - 1; capacity is a power of two (0 while empty). */
  private mask = -1;
  private start = 0;
  private count = 0;
  /** Made with the first token. */
  private texts: TextArena | null = null;
  /** Text end before the oldest entry. */
  private baseEnd = 0;
  /**
   * Entries after this seq are not yet in the broker: count trimming keeps them (up to twice the
   * limit) so a fast owner never drops what other nodes still need. -1: nothing to protect (a
   * small integer, where Infinity would cost every session a boxed number).
   */
  private pinned = -1;
  private last = 0;
  /** Budget characters held: text of every entry plus ENTRY_OVERHEAD each. */
  private held = 0;
  /** The turn of the last token and its part of the frame, so a token frame is four joins, not six. */
  private frameTurn = "";
  private frameMid = "";

  constructor(
    private readonly limits: EventLogLimits,
    private readonly now: () => number = Date.now,
  ) {}

  get lastSeq(): number {
    return this.last;
  }

  /** Oldest seq still held, or lastSeq + 1 when the log is empty. */
  get firstSeq(): number {
    return this.last - this.count + 1;
  }

  get size(): number {
    return this.count;
  }

  /** Characters held against `maxBytes` (text of every entry plus ENTRY_OVERHEAD each). */
  get bytes(): number {
    return this.held;
  }

  append(input: LoggedEventInput): LogEntry {
    if (input.type === "token" && input.from === undefined) return this.appendToken(input.turn, input.text);
    const seq = this.last + 1;
    // Key order puts `type` and `seq` first in every frame, which keeps the wire readable.
    const { type, ...rest } = input;
    const event = { type, seq, ...rest } as LoggedEvent;
    const frame = JSON.stringify(event);
    const at = this.now();
    this.store(seq, frame, -1 - this.textEnd(), at);
    return plainEntry(seq, at, event, frame);
  }

  /** The hot path: one frame per token, built without a generic serializer pass. */
  appendToken(turn: string, text: string): LogEntry {
    const seq = this.last + 1;
    if (turn !== this.frameTurn) {
      this.frameTurn = turn;
      this.frameMid = `,"turn":"${turn}","text":`;
    }
    const frame = `{"type":"token","seq":${seq}${this.frameMid}${JSON.stringify(text)}}`;
    const at = this.now();
    this.store(seq, turn, this.addText(text), at);
    return new TokenEntry(seq, at, frame, turn, text);
  }

  /**
   * Adds an event whose seq was assigned elsewhere (a replica of another node's log, or a log
   * reloaded on takeover). Returns null, adding nothing, unless it is exactly the next seq; an
   * empty log accepts any later seq (it starts where the stored log is).
   */
  insert(seq: number, frame: string, event: LoggedEvent): LogEntry | null {
    if (this.count > 0 ? seq !== this.last + 1 : seq <= this.last) return null;
    this.last = seq - 1;
    const at = this.now();
    if (event.type === "token" && event.from === undefined) {
      this.store(seq, event.turn, this.addText(event.text), at);
      return new TokenEntry(seq, at, frame, event.turn, event.text);
    }
    this.store(seq, frame, -1 - this.textEnd(), at);
    return plainEntry(seq, at, event, frame);
  }

  /** Forgets everything and continues after `lastSeq`: the events before it cannot be had anymore. */
  reset(lastSeq: number): void {
    this.release();
    this.last = lastSeq;
  }

  /** Entries with seq > afterSeq (at most `limit`), or `recovered: false` when some were already dropped. */
  after(afterSeq: number, limit = Number.POSITIVE_INFINITY): ReplayResult {
    this.trim();
    if (afterSeq > this.last) return { recovered: false, entries: [] };
    if (afterSeq < this.firstSeq - 1) return { recovered: false, entries: [] };
    const from = afterSeq - (this.firstSeq - 1);
    const to = Math.min(this.count, from + limit);
    const entries: LogEntry[] = [];
    for (let k = from; k < to; k++) entries.push(this.entryAt(k));
    return { recovered: true, entries };
  }

  /** Budget characters of the entries after `afterSeq` (what replaying from there costs); all held bytes when it is older than the log. */
  bytesAfter(afterSeq: number): number {
    let bytes = this.held;
    const skip = Math.min(this.count, afterSeq - (this.firstSeq - 1));
    let end = this.baseEnd;
    for (let k = 0; k < skip; k++) {
      const i = (this.start + k) & this.mask;
      const mark = this.marks[i] as number;
      bytes -= ENTRY_OVERHEAD + (mark >= 0 ? mark - end : (this.items[i] as string).length);
      end = decodeEnd(mark);
    }
    return bytes;
  }

  /** Marks everything up to `seq` as stored elsewhere; later entries are kept while trimming allows. */
  pin(seq: number): void {
    this.pinned = seq === Number.POSITIVE_INFINITY ? -1 : seq;
  }

  /** Drops entries beyond the count limit or older than the age limit, as of `now`. */
  trim(now = this.now()): void {
    const oldest = now - this.limits.maxAgeMs;
    const { maxEvents, maxBytes } = this.limits;
    const pinned = this.pinned;
    const count = this.count;
    while (this.count > maxEvents && (pinned < 0 || this.firstSeq <= pinned || this.count > maxEvents * 2)) this.dropOldest();
    while (this.count > 1 && this.held > maxBytes && (pinned < 0 || this.firstSeq <= pinned || this.held > maxBytes * 2)) this.dropOldest();
    while (this.count > 0 && (this.ats[this.start] as number) < oldest) this.dropOldest();
    if (this.count === count) return;
    if (this.count === 0) this.release();
    else this.texts?.dropBefore(this.baseEnd);
  }

  /** The k-th entry from the oldest. */
  private entryAt(k: number): LogEntry {
    const i = (this.start + k) & this.mask;
    const seq = this.firstSeq + k;
    const at = this.ats[i] as number;
    const item = this.items[i] as string;
    const mark = this.marks[i] as number;
    if (mark < 0) return new StoredEntry(seq, at, item);
    const from = k === 0 ? this.baseEnd : decodeEnd(this.marks[(i - 1) & this.mask] as number);
    const text = (this.texts as TextArena).slice(from, mark);
    return new TokenEntry(seq, at, tokenFrame(seq, item, text), item, text);
  }

  private textEnd(): number {
    return this.texts?.end ?? this.baseEnd;
  }

  private addText(text: string): number {
    this.texts ??= new TextArena(this.baseEnd);
    return this.texts.add(text);
  }

  private store(seq: number, item: string, mark: number, at: number): void {
    if (this.count > this.mask) this.grow();
    this.held += ENTRY_OVERHEAD + (mark >= 0 ? mark - this.lastEnd() : item.length);
    const i = (this.start + this.count) & this.mask;
    this.items[i] = item;
    this.marks[i] = mark;
    this.ats[i] = at;
    this.count++;
    this.last = seq;
    this.trim(at);
  }

  /** The text end as of the newest entry (a token's text starts there). */
  private lastEnd(): number {
    if (this.count === 0) return this.baseEnd;
    return decodeEnd(this.marks[(this.start + this.count - 1) & this.mask] as number);
  }

  private dropOldest(): void {
    const i = this.start;
    const mark = this.marks[i] as number;
    this.held -= ENTRY_OVERHEAD + (mark >= 0 ? mark - this.baseEnd : (this.items[i] as string).length);
    this.baseEnd = decodeEnd(mark);
    this.items[i] = undefined;
    this.start = (i + 1) & this.mask;
    this.count--;
  }

  /** Doubles the ring, oldest entry first. */
  private grow(): void {
    const capacity = Math.max(FIRST_CAPACITY, (this.mask + 1) * 2);
    const items: (string | undefined)[] = new Array(capacity).fill(undefined);
    const marks = new Float64Array(capacity);
    const ats = new Float64Array(capacity);
    for (let k = 0; k < this.count; k++) {
      const i = (this.start + k) & this.mask;
      items[k] = this.items[i];
      marks[k] = this.marks[i] as number;
      ats[k] = this.ats[i] as number;
    }
    this.items = items;
    this.marks = marks;
    this.ats = ats;
    this.mask = capacity - 1;
    this.start = 0;
  }

  /** Gives the storage back once the log is empty: a session at rest keeps none. */
  private release(): void {
    this.baseEnd = this.textEnd();
    this.texts?.clear();
    this.items = NO_ITEMS;
    this.marks = NO_NUMBERS;
    this.ats = NO_NUMBERS;
    this.mask = -1;
    this.start = 0;
    this.count = 0;
    this.held = 0;
  }
}

function decodeEnd(mark: number): number {
  return mark >= 0 ? mark : -1 - mark;
}
