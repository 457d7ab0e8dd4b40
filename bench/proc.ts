// Child server processes for the bench, and their CPU time and resident memory read from /proc.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";

let clockTicks: number | null = null;

/** Kernel clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
export function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU time of the whole process (every thread, GC helpers included), in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name sits in parentheses and may hold spaces: count fields from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / ticksPerSecond();
}

export interface MachineCpu {
  /** Every core's busy time (steal excluded), in ms. */
  busyMs: number;
  /** Time the hypervisor gave our cores to someone else, in ms. */
  stealMs: number;
}

/** Machine-wide CPU time from the first line of /proc/stat: tells a noisy host from a slow process. */
export function machineCpu(): MachineCpu {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const toMs = (ticks: number) => (ticks * 1000) / ticksPerSecond();
  return { busyMs: toMs((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)), stealMs: toMs(steal ?? 0) };
}

/** Resident set size in KB (VmRSS). */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** Samples RSS until it stops moving (freshly touched pages and late frees settle), within `maxMs`. */
export async function settledRssKb(pid: number, maxMs = 2500): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = rssKb(pid);
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = rssKb(pid);
    if (Math.abs(now - last) <= last * 0.002) return now;
    last = now;
  }
  return last;
}

export interface ChildServer {
  pid: number;
  port: number;
  nativeUws: boolean;
  /** The next stdout line starting with `prefix` (for probes loaded into the child). */
  nextLine(prefix: string, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL if the process lingers; resolves once it has exited. */
  stop(): Promise<void>;
}

export interface ChildServerOptions {
  script: string;
  args?: string[];
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** @default 15000 */
  startTimeoutMs?: number;
}

/** Starts a Node server that prints `{"listening":PORT,"nativeUws":BOOL}` on stdout once it accepts connections. */
export function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.script, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (text: string) => {
    // Keep only the tail: enough to explain a failure without growing for the whole run.
    stderr = (stderr + text).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const waiters: { prefix: string; resolve(line: string): void }[] = [];
  const nextLine = (prefix: string, timeoutMs = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${prefix}" line from ${options.script}`)), timeoutMs);
      waiters.push({
        prefix,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  return new Promise((resolve, reject) => {
    let partial = "";
    const timer = setTimeout(() => fail(new Error(`${options.script} did not report listening in time`)), options.startTimeoutMs ?? 15_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${err.message}\n${stderr}`));
    };
    const onEarlyExit = (code: number | null) => fail(new Error(`${options.script} exited with ${code} before listening`));
    child.once("exit", onEarlyExit);
    const onLine = (line: string) => {
      const waiter = waiters.findIndex((w) => line.startsWith(w.prefix));
      if (waiter >= 0) waiters.splice(waiter, 1)[0]?.resolve(line);
      if (!line.startsWith('{"listening"') || child.pid === undefined) return;
      clearTimeout(timer);
      child.off("exit", onEarlyExit);
      const info = JSON.parse(line) as { listening: number; nativeUws?: boolean };
      resolve({ pid: child.pid, port: info.listening, nativeUws: info.nativeUws ?? false, nextLine, stop: () => stopChild(child, exited) });
    };
    child.stdout?.setEncoding("utf8").on("data", (text: string) => {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    });
  });
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(killer);
}
