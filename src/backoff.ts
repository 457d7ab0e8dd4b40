// Exponential backoff, the one formula every retry loop here uses (upstream requests, log appends, Redis reconnects).

/** The wait before retry `attempt` (from 1): `baseMs`, doubling each time, never above `maxMs`. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/** Full jitter: a random wait in [0, backoffMs(...)), so clients that failed together do not retry together. */
export function jitteredBackoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * backoffMs(attempt, baseMs, maxMs));
}
