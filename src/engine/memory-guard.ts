// The node-wide memory budget: past it new sessions and turns are refused (overloaded) before the process is in danger.
import { getHeapStatistics } from "node:v8";

export interface MemoryGuardOptions {
  /** Resident set size past which new work is refused; 0: no RSS bound. */
  maxRssBytes: number;
  /** Share of V8's heap limit past which new work is refused (V8 ends the process at the limit). @default 0.85 */
  maxHeapFraction?: number;
  /** Readings are reused for this long: asking costs a few microseconds, not a syscall per message. @default 250 */
  sampleMs?: number;
  now?: () => number;
  /** Sources of the figures (tests). */
  read?: () => { rss: number; heapUsed: number; heapLimit: number };
}

function readProcess(): { rss: number; heapUsed: number; heapLimit: number } {
  const heap = getHeapStatistics();
  return { rss: process.memoryUsage.rss(), heapUsed: heap.used_heap_size, heapLimit: heap.heap_size_limit };
}

export class MemoryGuard {
  private readonly maxHeapFraction: number;
  private readonly sampleMs: number;
  private readonly now: () => number;
  private readonly read: () => { rss: number; heapUsed: number; heapLimit: number };
  private sampledAt = Number.NEGATIVE_INFINITY;
  private over = false;
  /** Times new work was refused (observability and tests). */
  refused = 0;

  constructor(private readonly options: MemoryGuardOptions) {
    this.maxHeapFraction = options.maxHeapFraction ?? 0.85;
    this.sampleMs = options.sampleMs ?? 250;
    this.now = options.now ?? Date.now;
    this.read = options.read ?? readProcess;
    if (!(this.maxHeapFraction > 0 && this.maxHeapFraction <= 1)) throw new RangeError("maxHeapFraction must be in (0, 1]");
  }

  /** True when the node is past its budget: refuse new sessions and turns, keep serving what runs. */
  get overloaded(): boolean {
    const now = this.now();
    if (now - this.sampledAt >= this.sampleMs) {
      this.sampledAt = now;
      const m = this.read();
      this.over = (this.options.maxRssBytes > 0 && m.rss > this.options.maxRssBytes) || m.heapUsed > m.heapLimit * this.maxHeapFraction;
    }
    if (this.over) this.refused++;
    return this.over;
  }
}

