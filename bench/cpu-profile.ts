// Runs agentwire once under --cpu-prof and summarizes where its CPU went: top self-time functions and files.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchContext } from "./section.js";
import { percent, type Table } from "./table.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const TOP_FUNCTIONS = 15;
const TOP_FILES = 10;

/** `run` must start agentwire with the given node flags and stop it cleanly, which writes the profile. */
export function profileAgentwire(ctx: BenchContext, run: (nodeArgs: string[]) => Promise<unknown>): Promise<Table[]> {
  return profileProcess(ctx, "agentwire", run);
}

/** As `profileAgentwire`, for any one Node process `run` starts with the flags and lets exit; `label` names it in the titles. */
export async function profileProcess(ctx: BenchContext, label: string, run: (nodeArgs: string[]) => Promise<unknown>): Promise<Table[]> {
  const dir = mkdtempSync(join(tmpdir(), "agentwire-cpuprof-"));
  try {
    await run(["--cpu-prof", `--cpu-prof-dir=${dir}`]);
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) {
      ctx.log(`cpu: ${label} wrote no profile`);
      return [];
    }
    return summarize(label, JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Paths relative to the build or node_modules, so rows stay short. */
function shortUrl(url: string): string {
  const dist = url.lastIndexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 6);
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) return url.slice(modules + 13);
  return url;
}

function summarize(label: string, profile: CpuProfile): Table[] {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    const micros = profile.timeDeltas[i] ?? 0;
    if (!frame || frame.functionName === "(idle)") return;
    total += micros;
    const file = frame.url ? shortUrl(frame.url) : frame.functionName;
    const fn = frame.url ? `${frame.functionName || "(anonymous)"}  ${file}:${frame.lineNumber + 1}` : frame.functionName;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + micros);
    byFile.set(file, (byFile.get(file) ?? 0) + micros);
  });
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, micros]) => [name, percent(micros, total, 1)]);
  return [
    { title: `${label} under --cpu-prof: top self time by function (share of non-idle samples)`, columns: ["function", "self"], rows: top(byFunction, TOP_FUNCTIONS) },
    { title: `${label} under --cpu-prof: self time by file`, columns: ["file", "self"], rows: top(byFile, TOP_FILES) },
  ];
}
