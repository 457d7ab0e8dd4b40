// Section: server CPU per delivered token and tokens/s, every server streaming long turns to a raw-socket client.
import { availableParallelism } from "node:os";
import type { BenchContext, BenchSection, SectionReport } from "./section.js";
import { type ServerKind, HOST, SERVER_KINDS, agentwire } from "./servers/index.js";
import { profileAgentwire } from "./cpu-profile.js";
import { num, percent, ratio, type Table } from "./table.js";
import { type LoadResult, forkTokenLoad } from "./token-load.js";

/** agentwire may spend at most this multiple of bare uWS's CPU per token. */
export const CPU_RATIO_TARGET = 1.5;

export interface Sizes {
  sessions: number;
  tokensPerTurn: number;
  warmupMs: number;
  measureMs: number;
  /** Interleaved passes over all servers; the least disturbed one (lowest CPU per token) is reported. */
  rounds: number;
}

const FULL: Sizes = { sessions: 8, tokensPerTurn: 50_000, warmupMs: 800, measureMs: 3000, rounds: 3 };
const QUICK: Sizes = { sessions: 4, tokensPerTurn: 20_000, warmupMs: 500, measureMs: 1500, rounds: 1 };

/** Share of one core above which a process counts as saturated. */
const SATURATED = 0.9;
/** Cores' worth of CPU used by other processes above which they, not we, set the pace. */
const OTHERS_BUSY = 0.3;

export interface Measured {
  kind: ServerKind;
  load: LoadResult;
  nativeUws: boolean;
  usPerToken: number;
  /** CPU per token of every round, best included. */
  spread: number[];
}

/** One run of `kind` under the token load: a fresh server, its links, one measured window. */
export async function measure(kind: ServerKind, sizes: Sizes, nodeArgs?: string[]): Promise<Measured> {
  const server = await kind.start({ tokensPerTurn: sizes.tokensPerTurn, nodeArgs });
  try {
    const links = await kind.prepareLinks(server, sizes.sessions);
    const load = await forkTokenLoad({
      host: HOST,
      port: server.port,
      serverPid: server.pid,
      links,
      startMessage: kind.startMessage(sizes.tokensPerTurn),
      framing: kind.framing,
      warmupMs: sizes.warmupMs,
      measureMs: sizes.measureMs,
    });
    const usPerToken = (load.serverCpuMs * 1000) / load.tokens;
    return { kind, load, nativeUws: server.nativeUws, usPerToken, spread: [usPerToken] };
  } finally {
    await server.stop();
  }
}

/** Which side ran out of CPU first; on a shared 2-core box it can also be neither. */
/** The rows every load table ends with: who used how much CPU, and what limited the run. */
export function loadRows<R extends { load: LoadResult }>(col: (f: (r: R) => string) => string[], cores: number): string[][] {
  return [
    ["server CPU (of one core)", ...col((r) => percent(r.load.serverCpuMs, r.load.elapsedMs))],
    ["client CPU (of one core)", ...col((r) => percent(r.load.clientCpuMs, r.load.elapsedMs))],
    [`machine busy (of ${cores} cores)`, ...col((r) => percent(r.load.machineBusyMs, r.load.elapsedMs * cores))],
    ["  stolen by the host", ...col((r) => percent(r.load.machineStealMs, r.load.elapsedMs * cores))],
    ["limited by", ...col((r) => limitOf(r.load))],
  ];
}

export function limitOf(load: LoadResult): string {
  const server = load.serverCpuMs / load.elapsedMs;
  const client = load.clientCpuMs / load.elapsedMs;
  if (server >= SATURATED) return "server CPU";
  if (client >= SATURATED) return "CLIENT CPU";
  // Busy time that belongs to neither process means something else on the host took the cores.
  const others = (load.machineBusyMs - load.serverCpuMs - load.clientCpuMs) / load.elapsedMs;
  return others >= OTHERS_BUSY ? "other processes" : "socket waits";
}

function table(results: Measured[], sizes: Sizes): Table {
  const cores = availableParallelism();
  const base = results.find((r) => r.kind.id === "uws");
  const col = (f: (r: Measured) => string) => results.map(f);
  const perSec = (r: Measured, n: number) => (n * 1000) / r.load.elapsedMs;
  return {
    title:
      `CPU per delivered token: ${sizes.sessions} sessions streaming ${num(sizes.tokensPerTurn)}-token turns back to back, ` +
      `${num(sizes.measureMs / 1000, 1)} s window, best of ${sizes.rounds} round${sizes.rounds > 1 ? "s" : ""}`,
    columns: ["", ...col((r) => r.kind.label)],
    rows: [
      ["server CPU per token (us)", ...col((r) => num(r.usPerToken, 3))],
      ["  vs bare uWS", ...col((r) => ratio(r.usPerToken, base?.usPerToken))],
      ["  all rounds (us)", ...col((r) => r.spread.map((v) => num(v, 3)).join(" / "))],
      ["tokens/s delivered", ...col((r) => num(perSec(r, r.load.tokens)))],
      ["token frames/s", ...col((r) => num(perSec(r, r.load.tokenFrames)))],
      ["merged frames (from)", ...col((r) => percent(r.load.mergedFrames, r.load.tokenFrames, 1))],
      ["MB/s received", ...col((r) => num(perSec(r, r.load.bytes) / 1e6, 1))],
      ["turns completed", ...col((r) => num(r.load.turns))],
      null,
      ...loadRows(col, cores),
    ],
  };
}

export const cpuPerToken: BenchSection = {
  id: "cpu",
  title: "CPU per token",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const best = new Map<ServerKind, Measured>();
    const notes: string[] = [
      "Server CPU is utime+stime of the server process from /proc/<pid>/stat (all threads), read by the client at the window's edges.",
      "The client is one separate process on raw sockets; loopback TCP work done in softirq context is charged to neither process.",
    ];
    // Interleaved rounds spread a noisy neighbour's bursts over every server instead of one.
    for (let round = 1; round <= sizes.rounds; round++) {
      for (const kind of SERVER_KINDS) {
        ctx.log(`cpu: round ${round}/${sizes.rounds}: ${kind.label}: ${sizes.sessions} sessions x ${sizes.tokensPerTurn} tokens`);
        const m = await measure(kind, sizes);
        if (m.load.errors > 0) notes.push(`${kind.label}, round ${round}: ${m.load.errors} error frames or dropped links; first: ${m.load.firstError}`);
        const prev = best.get(kind);
        const spread = [...(prev?.spread ?? []), m.usPerToken];
        best.set(kind, prev && prev.usPerToken <= m.usPerToken ? { ...prev, spread } : { ...m, spread });
      }
    }
    const results = SERVER_KINDS.map((kind) => best.get(kind) as Measured);
    for (const r of results) {
      const limit = limitOf(r.load);
      if (limit === "CLIENT CPU") notes.push(`${r.kind.label}: the load client, not the server, was the limit; CPU per token still holds, tokens/s is a floor.`);
      if (limit === "other processes" || limit === "socket waits") {
        notes.push(`${r.kind.label}: neither server nor client used a full core (${limit}); CPU per token still holds, tokens/s is a floor.`);
      }
      if (r.kind.id !== "ws" && !r.nativeUws) notes.push(`${r.kind.label}: uWebSockets.js ran its JS fallback, not the native binary.`);
    }
    const tables = [table(results, sizes)];
    if (ctx.profile) {
      ctx.log("cpu: profiling agentwire under --cpu-prof");
      const profiled = await profileAgentwire(ctx, (nodeArgs) => measure(agentwire, sizes, nodeArgs));
      tables.push(...profiled);
    }
    const aw = results.find((r) => r.kind === agentwire);
    const base = results.find((r) => r.kind.id === "uws");
    const value = aw && base ? aw.usPerToken / base.usPerToken : null;
    return {
      tables,
      notes,
      targets: [
        {
          label: `agentwire CPU per token <= ${CPU_RATIO_TARGET}x bare uWS`,
          measured: value === null ? "-" : `${value.toFixed(2)}x`,
          met: value === null || !Number.isFinite(value) ? null : value <= CPU_RATIO_TARGET,
        },
      ],
    };
  },
};
