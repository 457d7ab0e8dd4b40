// Latency samples for the bench: percentiles over a run and the row that prints them.
import { num } from "./table.js";

export interface Spread {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of sorted samples; NaN when there are none. */
function rank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: rank(sorted, 50),
    p90: rank(sorted, 90),
    p99: rank(sorted, 99),
    max: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN,
  };
}

/** Table cells for a spread in ms: samples, p50, p90, p99, max. */
export function spreadCells(s: Spread, decimals = 3): string[] {
  return [num(s.count), num(s.p50, decimals), num(s.p90, decimals), num(s.p99, decimals), num(s.max, decimals)];
}

export const SPREAD_COLUMNS = ["samples", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)"];

/** Monotonic milliseconds; one clock for everything timed inside the bench process. */
export function nowMs(): number {
  return performance.now();
}
