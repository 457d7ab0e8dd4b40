// Runs agentwire nodes as child processes of the real CLI, for multi-node tests.
import { type ChildProcess, spawn } from "node:child_process";
import { NODE_FLAGS } from "../../src/node-flags.js";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TEST_DEFAULTS } from "./test-defaults.js";

const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface NodeProc {
  readonly name: string;
  readonly port: number;
  readonly base: string;
  readonly wsBase: string;
  readonly child: ChildProcess;
  /** stderr and stdout so far, for failure messages. */
  output(): string;
  /** SIGKILL, as a crash would; resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Resolves when the process exits; rejects nothing. */
  exited: Promise<number | null>;
}

export async function startNode(name: string, env: Record<string, string | number>): Promise<NodeProc> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it)`);
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, "serve"], {
    // Open mode and no per-identity limits unless the test sets them (as startTestServer does).
    env: { ...process.env, ...stringEnv(TEST_DEFAULTS), LOG_LEVEL: "warn", AGENTWIRE_NODE_ID: name, ...stringEnv(env) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let out = "";
  child.stderr?.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    child.stdout?.on("data", (c) => {
      buf += c;
      out += c;
      const line = buf.split("\n").find((l) => l.startsWith('{"listening"'));
      if (line) resolve(JSON.parse(line).listening as number);
    });
    void exited.then((code) => reject(new Error(`node ${name} exited with ${code} before listening:\n${out}`)));
  });
  return {
    name,
    port,
    base: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
    child,
    output: () => out,
    exited,
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** Polls `check` until it holds; for states with no event to wait on (another process's readiness). */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000, everyMs = 50): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function stringEnv(env: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}
