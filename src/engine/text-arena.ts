// Append-only text of a session's token deltas, held as a few long strings instead of one per token.
import { frozenEmpty } from "./empty.js";

/** Deltas joined into one string at a time: the garbage collector then tracks one object, not hundreds. */
const SEAL_PARTS = 256;
const NO_PARTS = frozenEmpty<string>();

/**
 * Offsets are absolute (they only grow), so a log entry can keep the end of its text as a plain
 * number. Text before `dropBefore`'s offset may be released; reading it afterwards is a bug of the
 * caller, not something the arena can answer.
 */
export class TextArena {
  /** Joined chunks, oldest first; `chunkEnds[k]` is the absolute end of `chunks[k]`. */
  private chunks: string[] = [];
  private chunkEnds: number[] = [];
  /** Index of the oldest live chunk; the arrays are compacted lazily. */
  private first = 0;
  /** Absolute offset where `chunks[0]` starts. */
  private origin: number;
  /** Recent deltas not joined yet (the first `partCount` slots); they start at `sealedEnd`. */
  private parts: string[] = NO_PARTS;
  private partCount = 0;
  private sealedEnd: number;
  private total: number;

  /** `start`: the offset of the first character, for an arena that continues an earlier one. */
  constructor(start = 0) {
    this.origin = start;
    this.sealedEnd = start;
    this.total = start;
  }

  /** Absolute offset after the last character added. */
  get end(): number {
    return this.total;
  }

  /** Adds a delta; returns its end offset (its start is the previous end). */
  add(text: string): number {
    // Sized once per seal, so adding never regrows an array.
    if (this.partCount === 0) this.parts = new Array<string>(SEAL_PARTS);
    this.parts[this.partCount++] = text;
    this.total += text.length;
    if (this.partCount === SEAL_PARTS) this.seal();
    return this.total;
  }

  /** The text between two absolute offsets. */
  slice(from: number, to: number): string {
    if (from >= to) return "";
    if (to > this.sealedEnd) this.seal();
    let k = this.chunkAt(from);
    let out = "";
    while (from < to) {
      const chunk = this.chunks[k] as string;
      const start = k === 0 ? this.origin : (this.chunkEnds[k - 1] as number);
      const end = this.chunkEnds[k] as number;
      const stop = Math.min(to, end);
      out += from === start && stop === end ? chunk : chunk.slice(from - start, stop - start);
      from = stop;
      k++;
    }
    return out;
  }

  /** Releases whole chunks that end at or before `offset`. */
  dropBefore(offset: number): void {
    const ends = this.chunkEnds;
    while (this.first < ends.length && (ends[this.first] as number) <= offset) {
      // The slot stays (compaction is lazy) but must not keep its text alive: that text can be MBs.
      this.chunks[this.first] = "";
      this.first++;
    }
    if (this.first > 64 && this.first * 2 > ends.length) {
      this.origin = ends[this.first - 1] as number;
      this.chunks = this.chunks.slice(this.first);
      this.chunkEnds = ends.slice(this.first);
      this.first = 0;
    }
  }

  /** Forgets all text; offsets continue from `end`. */
  clear(): void {
    this.chunks = [];
    this.chunkEnds = [];
    this.first = 0;
    this.parts = NO_PARTS;
    this.partCount = 0;
    this.origin = this.total;
    this.sealedEnd = this.total;
  }

  private seal(): void {
    const n = this.partCount;
    if (n === 0) return;
    const parts = this.parts;
    this.chunks.push(n === 1 ? (parts[0] as string) : n === SEAL_PARTS ? parts.join("") : parts.slice(0, n).join(""));
    this.chunkEnds.push(this.total);
    this.sealedEnd = this.total;
    this.parts = NO_PARTS;
    this.partCount = 0;
  }

  /** Index of the chunk holding `offset` (binary search over the live chunks). */
  private chunkAt(offset: number): number {
    const ends = this.chunkEnds;
    let lo = this.first;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ends[mid] as number) > offset) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
