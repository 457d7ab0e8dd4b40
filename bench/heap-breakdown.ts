// Diagnosis for the idle-memory figure: splits agentwire's growth into live JS heap, heap slack and native memory.
import { fileURLToPath } from "node:url";
import { HEAP_PROBE_PREFIX, type HeapProbe } from "./heap-probe.js";
import { type ChildServer, settledRssKb } from "./proc.js";
import { openMany } from "./raw-ws-client.js";
import type { BenchContext } from "./section.js";
import { HOST, type ServerKind, agentwire, bareUws } from "./servers/index.js";
import { num, type Table } from "./table.js";

const PROBE_ARGS = ["--expose-gc", "--import", fileURLToPath(new URL("./heap-probe.js", import.meta.url))];

async function probe(server: ChildServer): Promise<HeapProbe> {
  // Let RSS settle first, so the forced collection measures the heap rather than moving the RSS reading.
  await settledRssKb(server.pid);
  const line = server.nextLine(HEAP_PROBE_PREFIX);
  process.kill(server.pid, "SIGUSR2");
  return (JSON.parse(await line) as { heapProbe: HeapProbe }).heapProbe;
}

/** Probes before, after creating what links attach to, and after attaching `count` idle links. */
export async function stages(kind: ServerKind, count: number): Promise<[HeapProbe, HeapProbe, HeapProbe]> {
  const server = await kind.start({ tokensPerTurn: 16, nodeArgs: PROBE_ARGS });
  const links = [];
  try {
    for (const link of await openMany(HOST, server.port, await kind.prepareLinks(server, 64))) link.close();
    const before = await probe(server);
    const paths = await kind.prepareLinks(server, count);
    const prepared = await probe(server);
    links.push(...(await openMany(HOST, server.port, paths)));
    const attached = await probe(server);
    return [before, prepared, attached];
  } finally {
    for (const link of links) link.close();
    await server.stop();
  }
}

export type Figure = (p: HeapProbe) => number;
// Committed heap is a poor guide here: V8 reserves pages that only count in RSS once touched.
export const FIGURES: [string, Figure][] = [
  ["RSS", (p) => p.rssKb],
  ["JS heap live (after forced GC)", (p) => p.heapUsedKb],
  ["rest: heap slack + native (uWS, malloc)", (p) => p.rssKb - p.heapUsedKb],
];

export async function heapBreakdown(ctx: BenchContext, count: number): Promise<Table> {
  ctx.log(`memory: heap breakdown of agentwire and bare uWS (${count} links, --expose-gc)`);
  const [a0, a1, a2] = await stages(agentwire, count);
  const [u0, , u2] = await stages(bareUws, count);
  const per = (f: Figure, from: HeapProbe, to: HeapProbe) => num((f(to) - f(from)) / count, 2);
  return {
    title: `Memory breakdown, KB per session (separate run with --expose-gc; heap read after a forced GC)`,
    columns: ["", "agentwire session", "+ its WebSocket", "agentwire total", "bare uWS link"],
    rows: FIGURES.map(([label, f]) => [label, per(f, a0, a1), per(f, a1, a2), per(f, a0, a2), per(f, u0, u2)]),
  };
}
