// Refuses new work while the process is near its open-files limit, so links get a 503 instead of hanging.
import { readFileSync, readdirSync, statSync } from "node:fs";

/**
 * At the limit uSockets cannot accept(): the connection waits in the kernel's backlog with no
 * answer while the listen socket spins the event loop. Refusing with headroom left keeps every
 * link answered, and each refused link gives its descriptor back at once.
 */

/** Longest a count is trusted, however quiet the server is. */
const MAX_AGE_MS = 1000;
/** Counting may take at most about 1 % of the time: the gap between counts is 100x a count's smoothed cost. */
const COST_FACTOR = 100;

/** The soft "Max open files" of this process; null when unlimited or unknown (no /proc). */
export function openFileLimit(path = "/proc/self/limits"): number | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  return soft && /^\d+$/.test(soft) ? Number(soft) : null;
}

/** This process's open descriptors, from /proc/self/fd. */
export function countOpenFds(dir = "/proc/self/fd"): number {
  // Linux 6.2+ reports the number of open descriptors as the directory's size: one stat, no listing.
  const size = statSync(dir).size;
  if (size > 0) return size;
  // Older kernels: list it; the listing holds one descriptor of its own.
  return readdirSync(dir).length - 1;
}

export interface FdGuardOptions {
  /** The open-files limit. */
  limit: number;
  /** Descriptors kept free; at most a quarter of the limit is kept. */
  headroom: number;
  count?: () => number;
  now?: () => number;
}

export class FdGuard {
  /** Open descriptors at which new work is refused. */
  readonly threshold: number;
  private open = 0;
  private sampledAt = Number.NEGATIVE_INFINITY;
  /** Requests let through since the last count: each may have come on a new link. */
  private admitted = 0;
  /** A count's cost, smoothed: one slow count (a busy machine) must not stretch the gap. */
  private costMs = 0;
  private gapMs = 0;
  private readonly count: () => number;
  private readonly now: () => number;

  constructor(private readonly options: FdGuardOptions) {
    this.threshold = options.limit - Math.min(options.headroom, Math.floor(options.limit / 4));
    this.count = options.count ?? countOpenFds;
    this.now = options.now ?? Date.now;
    // Twice: the first count pays for loading the code and says nothing about the next ones' cost.
    this.sample(this.now());
    this.costMs = 0;
    this.sample(this.now());
  }

  get limit(): number {
    return this.options.limit;
  }

  /** Descriptors open at the last count. */
  get openFds(): number {
    return this.open;
  }

  /**
   * True when a new request should be refused. Counts again once a second, and sooner when the
   * requests let through since the last count could have used up the headroom; until it may count
   * again, it assumes they did.
   */
  overloaded(): boolean {
    const now = this.now();
    const age = now - this.sampledAt;
    if (age >= MAX_AGE_MS || (this.open + this.admitted >= this.threshold && age >= this.gapMs)) this.sample(now);
    if (this.open + this.admitted >= this.threshold) return true;
    this.admitted++;
    return false;
  }

  private sample(now: number): void {
    const started = performance.now();
    try {
      this.open = this.count();
    } catch {
      // Listing /proc needs a descriptor too: failing to get one means there are none left.
      this.open = this.options.limit;
    }
    const cost = performance.now() - started;
    this.costMs = this.costMs === 0 ? cost : this.costMs * 0.8 + cost * 0.2;
    this.gapMs = Math.min(MAX_AGE_MS, this.costMs * COST_FACTOR);
    this.sampledAt = now;
    this.admitted = 0;
  }
}

/** The guard for this process; null when its limit cannot be read or `headroom` is 0 (off). */
export function processFdGuard(headroom: number, limit = openFileLimit()): FdGuard | null {
  if (headroom <= 0 || limit === null) return null;
  return new FdGuard({ limit, headroom });
}
