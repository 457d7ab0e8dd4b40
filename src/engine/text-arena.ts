// Append-only text of a session's token deltas, held as a few long strings instead of one per token.

/** Deltas joined into one string at a time: the garbage collector then tracks one object, not hundreds. */
const SEAL_PARTS = 256;

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
  /** Recent deltas not joined yet; they start at `sealedEnd`. */
  private parts: string[] = [];
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
    this.parts.push(text);
    this.total += text.length;
    if (this.parts.length >= SEAL_PARTS) this.seal();
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
    while (this.first < ends.length && (ends[this.first] as number) <= offset) this.first++;
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
    this.parts = [];
    this.origin = this.total;
    this.sealedEnd = this.total;
  }

  private seal(): void {
    const parts = this.parts;
    if (parts.length === 0) return;
    this.chunks.push(parts.length === 1 ? (parts[0] as string) : parts.join(""));
    this.chunkEnds.push(this.total);
    this.sealedEnd = this.total;
    this.parts = [];
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
