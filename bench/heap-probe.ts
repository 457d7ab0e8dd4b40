// Preloaded into a server (--expose-gc --import) for memory diagnosis: on SIGUSR2, collect garbage and print heap figures.
export interface HeapProbe {
  rssKb: number;
  heapUsedKb: number;
  heapTotalKb: number;
  externalKb: number;
  /** False when --expose-gc was missing, so heapUsed still holds garbage. */
  collected: boolean;
}

export const HEAP_PROBE_PREFIX = '{"heapProbe"';

process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = process.memoryUsage();
  const probe: HeapProbe = {
    rssKb: m.rss / 1024,
    heapUsedKb: m.heapUsed / 1024,
    heapTotalKb: m.heapTotal / 1024,
    externalKb: m.external / 1024,
    collected: gc !== undefined,
  };
  process.stdout.write(`${JSON.stringify({ heapProbe: probe })}\n`);
});
