// A throwaway redis-server for the bench: started as a child on a free port, without persistence, and read through INFO.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";

export interface RedisChild {
  pid: number;
  port: number;
  url: string;
  /** Calls per command since start (`cmdstat_<name>`), commands run inside scripts included. */
  commandCalls(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

/** A port nobody listens on right now; the short race until redis binds it is retried on. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function launch(port: number): Promise<ChildProcess> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => fail(new Error("redis-server did not report ready in time")), 10_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${err.message}\n${output.slice(-2000)}`));
    };
    child.once("error", (err) => fail(new Error(`cannot start redis-server: ${err.message}`)));
    child.once("exit", (code) => fail(new Error(`redis-server exited with ${code} before it was ready`)));
    const read = (text: string) => {
      output += text;
      if (!output.includes("Ready to accept connections")) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      child.stdout?.removeAllListeners("data");
      child.stdout?.resume();
      resolve(child);
    };
    child.stdout?.setEncoding("utf8").on("data", read);
    child.stderr?.setEncoding("utf8").on("data", (text: string) => {
      output += text;
    });
  });
}

export async function startRedis(): Promise<RedisChild> {
  let child: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 1; child === null; attempt++) {
    port = await freePort();
    try {
      child = await launch(port);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  const proc = child;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const stats = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: true });
  await stats.connect();
  return {
    pid: proc.pid as number,
    port,
    url: `redis://127.0.0.1:${port}`,
    async commandCalls() {
      const calls = new Map<string, number>();
      for (const match of (await stats.info("commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]));
      return calls;
    },
    async stop() {
      stats.disconnect();
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(killer);
    },
  };
}
