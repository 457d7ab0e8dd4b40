// `npm run bench`: runs every section (or those picked with --only), prints their tables and the targets.
import { authSection } from "./auth.js";
import { clientSection } from "./client.js";
import { cpuPerToken } from "./cpu-per-token.js";
import { demoPlan } from "./demo-plan.js";
import { idleMemory } from "./idle-memory.js";
import { peers } from "./peers.js";
import type { BenchContext, BenchSection, Target } from "./section.js";
import { redisHop } from "./redis-hop.js";
import { sseStreams } from "./sse-streams.js";
import { stalledLinks } from "./stalled-links.js";
import { renderTable, verdict } from "./table.js";
import { upstreamLatency } from "./upstream-latency.js";

/** Sections in run order; a new measurement adds itself here. */
const SECTIONS: readonly BenchSection[] = [cpuPerToken, idleMemory, peers, sseStreams, upstreamLatency, redisHop, demoPlan, stalledLinks, clientSection, authSection];

const USAGE = `usage: node dist/bench/run.js [--only=${SECTIONS.map((s) => s.id).join(",")}] [--quick] [--profile]
  --only=a,b   run only these sections
  --quick      smaller sizes and shorter windows (noisier figures)
  --profile    also profile agentwire (--cpu-prof; heap after forced GC) and show where CPU and memory go
`;

function parseArgs(argv: string[]): { only: Set<string> | null; quick: boolean; profile: boolean } | null {
  let only: Set<string> | null = null;
  let quick = false;
  let profile = false;
  for (const arg of argv) {
    if (arg === "--quick") quick = true;
    else if (arg === "--profile") profile = true;
    else if (arg.startsWith("--only=")) only = new Set(arg.slice(7).split(",").filter(Boolean));
    else return null;
  }
  if (only && [...only].some((id) => !SECTIONS.some((s) => s.id === id))) return null;
  return { only, quick, profile };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!args) {
    process.stderr.write(USAGE);
    return 2;
  }
  const started = performance.now();
  // Progress goes to stderr, so stdout holds only the report.
  const ctx: BenchContext = { quick: args.quick, profile: args.profile, log: (line) => process.stderr.write(`[bench] ${line}\n`) };
  const targets: Target[] = [];
  const out = (text: string) => process.stdout.write(`${text}\n`);
  out(`agentwire bench${args.quick ? " (quick)" : ""}: node ${process.version}, ${process.platform}/${process.arch}\n`);
  for (const section of SECTIONS) {
    if (args.only && !args.only.has(section.id)) continue;
    const report = await section.run(ctx);
    for (const table of report.tables) out(`${renderTable(table)}\n`);
    for (const note of report.notes) out(`  * ${note}`);
    if (report.notes.length > 0) out("");
    targets.push(...report.targets);
  }
  if (targets.length > 0) {
    out(renderTable({ title: "Targets", columns: ["target", "measured", "result"], rows: targets.map((t) => [t.label, t.measured, verdict(t.met)]) }));
  }
  ctx.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
