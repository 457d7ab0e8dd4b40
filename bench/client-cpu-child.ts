// Child-process entry of the client CPU measure: one client of one session (@agentwire/client, or the `ws`
// package with JSON.parse as the floor) streams turns back to back; it reads its own and the server's CPU
// from /proc at the very moments it reads its token counters, answers over IPC, and exits.
import { AgentwireClient } from "@agentwire/client";
import type { ServerMessage } from "@agentwire/protocol";
import WebSocket from "ws";
import { cpuMs, machineCpu } from "./proc.js";
import type { Counters as LoadCounters, LoadResult } from "./token-load.js";

export type ClientMode = "sdk" | "raw";

export interface ClientCpuJob {
  mode: ClientMode;
  host: string;
  port: number;
  serverPid: number;
  session: { sessionId: string; token: string };
  /** Sent at the start and again after every turn_end. */
  input: string;
  warmupMs: number;
  measureMs: number;
}

/** The load client's result, less the bytes: the SDK does not expose them. Errors here also count refused inputs and lost links. */
export type ClientCpuResult = Omit<LoadResult, "bytes">;

type Counters = Omit<LoadCounters, "bytes"> & { firstError: string | null };

/** What the application does with each message: count it. Kept tiny so the client's own work dominates. */
function count(c: Counters, m: ServerMessage): void {
  if (m.type === "token") {
    c.tokenFrames++;
    if (m.from === undefined) c.tokens++;
    else {
      c.tokens += m.seq - m.from + 1;
      c.mergedFrames++;
    }
  } else if (m.type === "turn_end") {
    c.turns++;
  } else if (m.type === "error") {
    c.errors++;
    c.firstError ??= `${m.code}: ${m.message}`;
  }
}

interface Running {
  stop(): void;
}

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
};

async function startSdk(job: ClientCpuJob, c: Counters): Promise<Running> {
  let running = true;
  const client = new AgentwireClient({ url: `http://${job.host}:${job.port}`, session: job.session, WebSocket, store: null, transport: "websocket" });
  client.on("message", (m) => count(c, m));
  client.on("state", (s) => {
    if (running && (s.status === "reconnecting" || s.status === "closed")) {
      c.errors++;
      c.firstError ??= `the link ended: ${s.reason?.code} ${s.reason?.message}`;
    }
  });
  await within(client.connect(), 10_000, "the SDK's connect");
  const next = () => {
    if (!running) return;
    client.send(job.input).done.then(next, (err: unknown) => {
      c.errors++;
      c.firstError ??= `input refused: ${err instanceof Error ? err.message : String(err)}`;
    });
  };
  next();
  return {
    stop() {
      running = false;
      client.close();
    },
  };
}

async function startRaw(job: ClientCpuJob, c: Counters): Promise<Running> {
  let running = true;
  const ws = new WebSocket(`ws://${job.host}:${job.port}/v1/sessions/${job.session.sessionId}/ws`, ["agentwire.v1", `bearer.${job.session.token}`]);
  const input = JSON.stringify({ type: "input", text: job.input });
  const welcomed = new Promise<void>((resolve, reject) => {
    ws.on("message", (data: Buffer) => {
      const m = JSON.parse(data.toString()) as ServerMessage;
      count(c, m);
      if (m.type === "session") resolve();
      else if (m.type === "turn_end" && running) ws.send(input);
    });
    ws.on("error", reject);
    ws.on("close", () => {
      reject(new Error("closed before the welcome"));
      if (running) {
        c.errors++;
        c.firstError ??= "the server closed the link";
      }
    });
  });
  await within(welcomed, 10_000, "the raw client's welcome");
  ws.send(input);
  return {
    stop() {
      running = false;
      ws.terminate();
    },
  };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function snapshot(job: ClientCpuJob, c: Counters) {
  // One read of each clock, side by side: the window is the same for the counters and both processes.
  return { at: performance.now(), server: cpuMs(job.serverPid), client: cpuMs(process.pid), machine: machineCpu(), c: { ...c } };
}

async function run(job: ClientCpuJob): Promise<ClientCpuResult> {
  // The first /proc read asks getconf for the tick rate: done here, not inside the window.
  cpuMs(process.pid);
  const c: Counters = { tokens: 0, tokenFrames: 0, mergedFrames: 0, turns: 0, errors: 0, firstError: null };
  const running = job.mode === "sdk" ? await startSdk(job, c) : await startRaw(job, c);
  try {
    await delay(job.warmupMs);
    const before = snapshot(job, c);
    await delay(job.measureMs);
    const after = snapshot(job, c);
    return {
      elapsedMs: after.at - before.at,
      tokens: after.c.tokens - before.c.tokens,
      tokenFrames: after.c.tokenFrames - before.c.tokenFrames,
      mergedFrames: after.c.mergedFrames - before.c.mergedFrames,
      turns: after.c.turns - before.c.turns,
      serverCpuMs: after.server - before.server,
      clientCpuMs: after.client - before.client,
      machineBusyMs: after.machine.busyMs - before.machine.busyMs,
      machineStealMs: after.machine.stealMs - before.machine.stealMs,
      errors: after.c.errors - before.c.errors,
      firstError: c.firstError,
    };
  } finally {
    running.stop();
  }
}

process.once("message", (job: ClientCpuJob) => {
  run(job).then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (err: unknown) => process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) }, () => process.exit(1)),
  );
});
