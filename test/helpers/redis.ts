// Real redis-server child processes for tests: ephemeral ports, private temp dirs, no persistence, no leftovers.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Redis } from "ioredis";
import { requireBinaryOrSkip } from "./require-binary.js";

export const REDIS_HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 5_000;
const POLL_INTERVAL_MS = 25;
const PROBE_TIMEOUT_MS = 1_000;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 5;
const OUTPUT_TAIL_CHARS = 4_000;

export type RedisHarnessCode = "REDIS_MISSING" | "REDIS_PORT_IN_USE" | "REDIS_EXITED" | "REDIS_NOT_READY" | "REDIS_CLUSTER_CREATE";

/** Harness failures carry a stable code so callers branch on it, never on message text. */
export class RedisHarnessError extends Error {
  constructor(readonly code: RedisHarnessCode, message: string) {
    super(message);
    this.name = "RedisHarnessError";
  }
}

export interface StartRedisOptions {
  /** Port to listen on. A busy port fails with REDIS_PORT_IN_USE instead of moving elsewhere. @default a free ephemeral port */
  port?: number;
  /** Extra redis-server arguments, appended after the harness defaults. @default [] */
  args?: readonly string[];
}

export interface RedisProc {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** pid of the running redis-server, undefined while it is down. */
  readonly pid: number | undefined;
  /** End of life: quits assertion clients, SIGTERM, waits for exit, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** A crash: SIGKILL and wait for exit. Clients and the dir stay, so `restart()` can follow. */
  kill(): Promise<void>;
  /** SIGTERM if running, then a new process on the same port and dir, resolved once it answers PING. */
  restart(): Promise<void>;
  /** A new ioredis client for assertions; it reconnects across restarts and is quit by `stop()`. */
  client(): Redis;
}

let missingReason: string | null | undefined;

/** Why the harness cannot run here (no binaries, or older than 7.0 which lacks --cluster-port), or null. */
function whyRedisMissing(): string | null {
  if (missingReason !== undefined) return missingReason;
  missingReason = null;
  for (const bin of ["redis-server", "redis-cli"]) {
    const version = spawnSync(bin, ["--version"], { encoding: "utf8" });
    if (version.error || version.status !== 0) {
      missingReason = `${bin} not found on PATH`;
      break;
    }
    const major = Number(/(\d+)\.\d+\.\d+/.exec(version.stdout)?.[1] ?? 0);
    if (major < 7) {
      missingReason = `${bin} is older than 7.0 (${version.stdout.trim()})`;
      break;
    }
  }
  return missingReason;
}

export function redisAvailable(): boolean {
  return whyRedisMissing() === null;
}

/** True when Redis tests should run. Missing Redis is fatal on CI and a loud skip elsewhere. */
export function requireRedisOrSkip(): boolean {
  return requireBinaryOrSkip("Redis tests", whyRedisMissing(), "install redis-server 7+");
}

/** Distinct free ports: all listeners are held open together so the kernel cannot hand out one twice. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once("error", reject);
            server.listen(0, REDIS_HOST, () => resolve((server.address() as AddressInfo).port));
          }),
      ),
    );
  } finally {
    await Promise.all(
      servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))),
    );
  }
}

/** Polls a readiness probe; the interval only paces retries, the condition is what ends the wait. */
export async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) {
      throw new RedisHarnessError("REDIS_NOT_READY", `timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await delay(POLL_INTERVAL_MS);
  }
}

/** The first RESP reply in buf: undefined while incomplete, null for an error reply or anything unexpected. */
function parseReply(buf: Buffer): string | number | null | undefined {
  const eol = buf.indexOf("\r\n");
  if (eol < 0) return undefined;
  const head = buf.toString("utf8", 1, eol);
  if (buf[0] === 0x2b) return head; // +simple string
  if (buf[0] === 0x3a) return Number(head); // :integer
  if (buf[0] !== 0x24) return null; // -error or a type no probe asks for
  const len = Number(head); // $bulk string
  if (len < 0) return null;
  return buf.length >= eol + 2 + len + 2 ? buf.toString("utf8", eol + 2, eol + 2 + len) : undefined;
}

/**
 * One command on a throwaway raw connection; null when nothing answers in time or the answer is an error.
 * Raw rather than ioredis so a port held by something that accepts but never speaks RESP cannot stall a poll.
 */
export function probe(port: number, ...command: string[]): Promise<string | number | null> {
  return new Promise((resolve) => {
    const socket = connect(port, REDIS_HOST);
    let buf = Buffer.alloc(0);
    const finish = (reply: string | number | null) => {
      socket.destroy();
      resolve(reply);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => finish(null));
    socket.on("error", () => finish(null));
    socket.on("close", () => finish(null));
    socket.on("connect", () => {
      const args = command.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
      socket.write(`*${command.length}\r\n${args.join("")}`);
    });
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const reply = parseReply(buf);
      if (reply !== undefined) finish(reply);
    });
  });
}

// Process-wide on purpose: the fallback must reach children of every test in this worker.
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let reaperInstalled = false;

function reapAll(): void {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

function installReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on("exit", reapAll);
  // A fork worker whose runner died (SIGINT outside a terminal) lives on as an orphan; its IPC channel closing is the only sign.
  if (process.connected) process.once("disconnect", reapAll);
  // Vitest stops a fork worker with SIGTERM, which skips "exit" unless someone handles the signal.
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    const onSignal = () => {
      reapAll();
      process.off(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

interface RedisChild {
  child: ChildProcess;
  /** Settles once the process has exited and its pipes are drained. */
  closed: Promise<void>;
  done(): boolean;
  /** Why this process can never become ready, or undefined while it still may. */
  failure(): RedisHarnessError | undefined;
  end(signal: NodeJS.Signals): Promise<void>;
}

function spawnChild(port: number, dir: string, extra: readonly string[]): RedisChild {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", REDIS_HOST, "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, ...extra],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.add(child);
  // Only a tail is kept, for startup error messages; draining the pipes also keeps redis from blocking on them.
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let spawnError: Error | undefined;
  let closed = false;
  child.once("error", (err) => {
    spawnError = err;
    children.delete(child);
  });
  const closing = new Promise<void>((resolve) =>
    child.once("close", () => {
      closed = true;
      children.delete(child);
      resolve();
    }),
  );
  const handle: RedisChild = {
    child,
    closed: closing,
    done: () => closed || spawnError !== undefined,
    failure() {
      if (spawnError) return new RedisHarnessError("REDIS_MISSING", `cannot spawn redis-server: ${spawnError.message}`);
      if (!closed) return undefined;
      const code = /address already in use/i.test(output) ? "REDIS_PORT_IN_USE" : "REDIS_EXITED";
      return new RedisHarnessError(code, `redis-server on port ${port} exited during startup:\n${output}`);
    },
    async end(signal) {
      if (handle.done()) return;
      child.kill(signal);
      // A server that ignores SIGTERM would hang the suite; escalate rather than wait forever.
      const escalate = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await closing;
      clearTimeout(escalate);
    },
  };
  return handle;
}

async function spawnReady(port: number, dir: string, extra: readonly string[]): Promise<RedisChild> {
  await mkdir(dir, { recursive: true });
  dirs.add(dir);
  const handle = spawnChild(port, dir, extra);
  try {
    await pollUntil(`redis-server on port ${port} to answer PING`, async () => {
      const failure = handle.failure();
      if (failure) throw failure;
      // An early exit ends the attempt at once instead of after a probe against a port someone else holds.
      const pong = probe(port, "PING").then((reply) => reply === "PONG");
      return Promise.race([pong, handle.closed.then(() => false)]);
    });
  } catch (err) {
    await handle.end("SIGKILL");
    throw err;
  }
  return handle;
}

export function isPortInUse(err: unknown): boolean {
  return err instanceof RedisHarnessError && err.code === "REDIS_PORT_IN_USE";
}

async function removeDir(dir: string): Promise<void> {
  dirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

interface Quittable {
  readonly status: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/** Quits connected clients politely and drops the rest, so none keeps reconnecting after a test. */
export async function quitAll(clients: Set<Quittable>): Promise<void> {
  const all = [...clients];
  clients.clear();
  await Promise.all(all.map((c) => (c.status === "ready" ? c.quit().then(() => {}, () => c.disconnect()) : c.disconnect())));
}

class RedisServer implements RedisProc {
  readonly url: string;
  private readonly clients = new Set<Redis>();

  constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly args: readonly string[],
    private current: RedisChild | undefined,
  ) {
    this.url = `redis://${REDIS_HOST}:${port}`;
  }

  get pid(): number | undefined {
    return this.current && !this.current.done() ? this.current.child.pid : undefined;
  }

  async stop(): Promise<void> {
    await quitAll(this.clients);
    await this.current?.end("SIGTERM");
    await removeDir(this.dir);
  }

  async kill(): Promise<void> {
    await this.current?.end("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.current?.end("SIGTERM");
    this.current = await spawnReady(this.port, this.dir, this.args);
  }

  client(): Redis {
    const client = new Redis({ host: REDIS_HOST, port: this.port });
    // Commands still reject with their own errors; the event would only repeat them during deliberate restarts.
    client.on("error", () => {});
    this.clients.add(client);
    client.once("end", () => this.clients.delete(client));
    return client;
  }
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisProc> {
  const missing = whyRedisMissing();
  if (missing !== null) throw new RedisHarnessError("REDIS_MISSING", missing);
  installReaper();
  const args = opts.args ?? [];
  const dir = await mkdtemp(join(tmpdir(), "agentwire-redis-"));
  try {
    for (let attempt = 1; ; attempt++) {
      // Another process can take a probed port before redis binds it; only a caller-chosen port is final.
      const port = opts.port ?? (await freePorts(1))[0]!;
      try {
        return new RedisServer(port, dir, args, await spawnReady(port, dir, args));
      } catch (err) {
        if (opts.port !== undefined || attempt >= PORT_ATTEMPTS || !isPortInUse(err)) throw err;
      }
    }
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}
