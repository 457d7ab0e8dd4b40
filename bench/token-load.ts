// Drives token streams flat out over raw WebSockets (plain or Socket.IO) and counts delivered tokens with byte checks, not JSON parsing.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpuMs, machineCpu } from "./proc.js";
import { connectRawSio } from "./raw-sio-client.js";
import { type RawWs, connectRawWs } from "./raw-ws-client.js";

export interface LoadJob {
  host: string;
  port: number;
  /** Its CPU time is read at the very moments the token counters are, so both cover the same window. */
  serverPid: number;
  /** Upgrade paths, one streaming session each. */
  links: string[];
  /** Sent at connect and again after every turn_end, so each session streams back to back. */
  startMessage: string;
  /** `socket.io`: the links speak engine.io v4 + Socket.IO and each token frame is the one argument of an event. Absent: plain WebSocket frames. */
  framing?: "socket.io";
  warmupMs: number;
  measureMs: number;
}

/** The same load over SSE: streams read, turns started by POSTed messages (see sse-load.ts). */
export interface SseLoadJob extends Omit<LoadJob, "links" | "startMessage" | "framing"> {
  transport: "sse";
  sessions: { sessionId: string; token: string }[];
  /** Client message POSTed to start a turn: at the start and after every turn_end. */
  inputBody: string;
}

export interface LoadResult {
  elapsedMs: number;
  tokens: number;
  tokenFrames: number;
  /** Frames that carried several tokens (`from` present): the server merged for a lagging reader. */
  mergedFrames: number;
  bytes: number;
  turns: number;
  serverCpuMs: number;
  clientCpuMs: number;
  /** All cores, every process: with server and client below one core each, this shows who else was busy. */
  machineBusyMs: number;
  machineStealMs: number;
  /** Error frames and links closed by the server inside the window; both should be zero. */
  errors: number;
  firstError: string | null;
}

export interface Counters {
  tokens: number;
  tokenFrames: number;
  mergedFrames: number;
  bytes: number;
  turns: number;
  errors: number;
}

export const newCounters = (): Counters => ({ tokens: 0, tokenFrames: 0, mergedFrames: 0, bytes: 0, turns: 0, errors: 0 });

const QUOTE = 0x22;

export type FrameKind = "token" | "turn_end" | "error" | "other";

/**
 * Counts one agentwire frame `buf[s..e)` without parsing it: `{"type":"token",...` puts the type's
 * letters at fixed offsets. SSE `data:` payloads are the same JSON, so both transports count alike.
 */
export function countFrame(c: Counters, buf: Buffer, s: number, e: number): FrameKind {
  if (buf[s + 9] === 0x74 && buf[s + 10] === 0x6f && buf[s + 11] === 0x6b) {
    c.tokenFrames++;
    // A plain token frame ends with its text's closing quote; a merged one ends with `"from":N}`.
    if (buf[e - 2] === QUOTE) c.tokens++;
    else {
      const merged = JSON.parse(buf.toString("utf8", s, e)) as { seq: number; from: number };
      c.tokens += merged.seq - merged.from + 1;
      c.mergedFrames++;
    }
    return "token";
  }
  if (buf[s + 10] === 0x75 && buf[s + 13] === 0x5f && buf[s + 14] === 0x65) {
    c.turns++;
    return "turn_end";
  }
  if (buf[s + 9] === 0x65 && buf[s + 10] === 0x72) {
    c.errors++;
    return "error";
  }
  return "other";
}

const COMMA = 0x2c;

/** The frame inside a Socket.IO event `["t",{...}]`: after the event name's comma, before the closing bracket. */
function onEventFrame(buf: Buffer, s: number, e: number, onFrame: (buf: Buffer, s: number, e: number) => void): void {
  const comma = buf.indexOf(COMMA, s);
  if (comma > s && comma < e - 1) onFrame(buf, comma + 1, e - 1);
}

/** Told at the moments the window opens and closes, so other processes can be read over the same span. */
export type WindowEdge = "start" | "end";

/** Waits out the warmup, then reads counters and CPU at both edges of the measured window. */
export async function measureWindow(
  job: Pick<LoadJob, "serverPid" | "warmupMs" | "measureMs">,
  c: Counters,
  onEdge?: (edge: WindowEdge) => void,
): Promise<Omit<LoadResult, "firstError">> {
  await delay(job.warmupMs);
  const before = snapshot(job.serverPid, c);
  onEdge?.("start");
  await delay(job.measureMs);
  const after = snapshot(job.serverPid, c);
  onEdge?.("end");
  return {
    elapsedMs: after.at - before.at,
    tokens: after.c.tokens - before.c.tokens,
    tokenFrames: after.c.tokenFrames - before.c.tokenFrames,
    mergedFrames: after.c.mergedFrames - before.c.mergedFrames,
    bytes: after.c.bytes - before.c.bytes,
    turns: after.c.turns - before.c.turns,
    serverCpuMs: after.server - before.server,
    clientCpuMs: (after.client - before.client) / 1000,
    machineBusyMs: after.machine.busyMs - before.machine.busyMs,
    machineStealMs: after.machine.stealMs - before.machine.stealMs,
    errors: after.c.errors - before.c.errors,
  };
}

export async function runTokenLoad(job: LoadJob, onEdge?: (edge: WindowEdge) => void): Promise<LoadResult> {
  const c = newCounters();
  let running = true;
  let firstError: string | null = null;
  const links: RawWs[] = await Promise.all(
    job.links.map(async (path) => {
      let link: RawWs | null = null;
      const onFrame = (buf: Buffer, s: number, e: number) => {
        const kind = countFrame(c, buf, s, e);
        if (kind === "turn_end" && running) link?.sendText(job.startMessage);
        else if (kind === "error") firstError ??= buf.toString("utf8", s, Math.min(e, s + 300));
      };
      const common = {
        host: job.host,
        port: job.port,
        path,
        onBytes: (n: number) => {
          c.bytes += n;
        },
        onClose: () => {
          if (running) {
            c.errors++;
            firstError ??= "the server closed a streaming link";
          }
        },
      };
      link =
        job.framing === "socket.io"
          ? await connectRawSio({ ...common, onEvent: (buf, s, e) => onEventFrame(buf, s, e, onFrame) })
          : await connectRawWs({ ...common, onMessage: onFrame });
      return link;
    }),
  );
  for (const link of links) link.sendText(job.startMessage);

  const result = await measureWindow(job, c, onEdge);
  running = false;
  for (const link of links) link.close();
  return { ...result, firstError };
}

function snapshot(serverPid: number, c: Counters) {
  const usage = process.cpuUsage();
  return { at: performance.now(), server: cpuMs(serverPid), client: usage.user + usage.system, machine: machineCpu(), c: { ...c } };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the load in its own process, so its CPU is its own and it never shares an event loop with the
 * bench. `onEdge` hears when the measured window opens and closes (a few ms late, over IPC).
 */
export function forkTokenLoad(job: LoadJob | SseLoadJob, onEdge?: (edge: WindowEdge) => void): Promise<LoadResult> {
  const child = fork(fileURLToPath(new URL("./load-client.js", import.meta.url)), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    let result: LoadResult | null = null;
    child.on("message", (message) => {
      const reply = message as { edge: WindowEdge } | { ok: true; result: LoadResult } | { ok: false; error: string };
      if ("edge" in reply) onEdge?.(reply.edge);
      else if (reply.ok) result = reply.result;
      else reject(new Error(reply.error));
    });
    child.once("exit", (code) => {
      if (result) resolve(result);
      else reject(new Error(`load client exited with ${code} and no result`));
    });
    child.send(job);
  });
}
