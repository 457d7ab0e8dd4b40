// Section: what agentwire adds between a model and its client: time-to-first-token overhead and cancel latency against a fake upstream.
import { type Socket, connect } from "node:net";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { FakeOpenAI, UPSTREAM_PACING } from "./fake-openai.js";
import { type ChildServer, machineCpu, startChildServer } from "./proc.js";
import type { BenchContext, BenchSection, SectionReport, Target } from "./section.js";
import { HOST, startAgentwire } from "./servers/index.js";
import { createSessions } from "./servers/agentwire-sessions.js";
import { SessionClient } from "./session-client.js";
import { SPREAD_COLUMNS, type Spread, nowMs, spread, spreadCells } from "./stats.js";
import { num, percent, ratio, type Table } from "./table.js";

/** agentwire may add at most this much to time-to-first-token at p99 (ms). */
export const TTFT_P99_TARGET_MS = 1;
/** A cancel must reach the upstream within this at p99 (ms). */
export const CANCEL_P99_TARGET_MS = 10;

interface Sizes {
  sessions: number;
  /** Turns run first and thrown away: connection pools and JIT warm up. */
  warmupTurns: number;
  ttftTurns: number;
  cancelTurns: number;
}

const FULL: Sizes = { sessions: 8, warmupTurns: 24, ttftTurns: 500, cancelTurns: 400 };
const QUICK: Sizes = { sessions: 4, warmupTurns: 12, ttftTurns: 100, cancelTurns: 100 };

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isToken = (f: { type: string }) => f.type === "token";
const isTurnEnd = (f: { type: string }) => f.type === "turn_end";

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Upstream's first content write -> the client's first token frame of the turn. */
async function ttftTurn(client: SessionClient, upstream: FakeOpenAI): Promise<number> {
  const call = upstream.nextCall();
  const first = client.next(isToken);
  const end = client.next(isTurnEnd);
  client.send({ type: "input", text: "hi" });
  const c = await within(call, 10_000, "the upstream request");
  try {
    const [written, arrival] = await Promise.all([c.firstContent, first]);
    return arrival.at - written;
  } finally {
    c.finish();
    await end;
  }
}

interface Cancelled {
  hangUpMs: number;
  turnEndMs: number;
  status: string | undefined;
}

/** The client's cancel frame -> the upstream seeing its request socket close, `lagMs` into the stream. */
async function cancelTurn(client: SessionClient, upstream: FakeOpenAI, lagMs: number): Promise<Cancelled> {
  const call = upstream.nextCall();
  const first = client.next(isToken);
  const end = client.next(isTurnEnd);
  client.send({ type: "input", text: "hi" });
  const c = await within(call, 10_000, "the upstream request");
  await first;
  await delay(lagMs);
  const sent = nowMs();
  client.send({ type: "cancel" });
  const [hungUp, ended] = await Promise.all([within(c.hungUp, 5000, "the upstream hang-up"), end]);
  return { hangUpMs: hungUp - sent, turnEndMs: ended.at - sent, status: ended.frame.status };
}

/** Two loopback hops through a bare child process: the floor under any relay's added latency. */
class LoopbackFloor {
  private constructor(
    private readonly echo: ChildServer,
    private readonly socket: Socket,
  ) {}

  static async start(): Promise<LoopbackFloor> {
    const echo = await startChildServer({ script: fileURLToPath(new URL("./servers/tcp-echo.js", import.meta.url)) });
    const socket = connect({ host: HOST, port: echo.port, noDelay: true });
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    return new LoopbackFloor(echo, socket);
  }

  /** One round trip of a 64-byte message, in ms. */
  async sample(): Promise<number> {
    const back = new Promise((resolve) => this.socket.once("data", resolve));
    const sent = nowMs();
    this.socket.write(PROBE);
    await back;
    return nowMs() - sent;
  }

  async stop(): Promise<void> {
    this.socket.destroy();
    await this.echo.stop();
  }
}

const PROBE = Buffer.alloc(64, 0x61);

interface Phase<T> {
  results: T[];
  /** Machine busy share of all cores over the phase: how quiet the box was. */
  busy: string;
}

async function phase<T>(turns: number, clients: SessionClient[], run: (client: SessionClient, i: number) => Promise<T>): Promise<Phase<T>> {
  const started = nowMs();
  const before = machineCpu();
  const results: T[] = [];
  for (let i = 0; i < turns; i++) results.push(await run(clients[i % clients.length] as SessionClient, i));
  const busyMs = machineCpu().busyMs - before.busyMs;
  return { results, busy: percent(busyMs, (nowMs() - started) * availableParallelism()) };
}

function table(ttft: Spread, floor: Spread, hangUp: Spread, turnEnd: Spread, sizes: Sizes): Table {
  const ratios = (s: Spread) => [num(s.count), ratio(s.p50, floor.p50), ratio(s.p90, floor.p90), ratio(s.p99, floor.p99), ratio(s.max, floor.max)];
  return {
    title:
      `agentwire upstream latency: OpenAI-compatible fake upstream and WebSocket client in the bench process (one clock), ` +
      `${sizes.sessions} sessions, turns one at a time`,
    columns: ["", ...SPREAD_COLUMNS],
    rows: [
      ["TTFT overhead: upstream content write -> client token", ...spreadCells(ttft)],
      ["  vs loopback floor", ...ratios(ttft)],
      ["loopback floor: echo through a bare child process", ...spreadCells(floor)],
      null,
      ["cancel: client cancel frame -> upstream socket close", ...spreadCells(hangUp)],
      ["cancel: client cancel frame -> client turn_end", ...spreadCells(turnEnd)],
    ],
  };
}

interface Measured {
  ttft: Phase<number>;
  floorMs: number[];
  cancels: Phase<Cancelled>;
  problems: string[];
}

async function measure(ctx: BenchContext, sizes: Sizes, upstream: FakeOpenAI, server: ChildServer, floor: LoopbackFloor): Promise<Measured> {
  const clients: SessionClient[] = [];
  try {
    for (const s of await createSessions(HOST, server.port, sizes.sessions)) clients.push(await SessionClient.open(HOST, server.port, s.sessionId, s.token));
    upstream.style = "prompt";
    ctx.log(`upstream: ${sizes.warmupTurns} warmup turns, then ${sizes.ttftTurns} turns for time-to-first-token`);
    await phase(sizes.warmupTurns, clients, (c) => ttftTurn(c, upstream));
    // Each turn follows a loopback sample, so the floor is taken under the same host noise.
    const floorMs: number[] = [];
    const ttft = await phase(sizes.ttftTurns, clients, async (c) => {
      floorMs.push(await floor.sample());
      return ttftTurn(c, upstream);
    });
    upstream.style = "slow";
    ctx.log(`upstream: ${sizes.cancelTurns} cancelled turns`);
    // Cancels land at every point of the upstream's chunk period, not in step with it.
    const cancels = await phase(sizes.cancelTurns, clients, (c, i) => cancelTurn(c, upstream, (i * 7) % UPSTREAM_PACING.slowChunkMs));
    return { ttft, floorMs, cancels, problems: clients.flatMap((c) => c.problems) };
  } finally {
    for (const client of clients) client.close();
  }
}

function report(m: Measured, sizes: Sizes): SectionReport {
  const ttft = spread(m.ttft.results);
  const floor = spread(m.floorMs);
  const hangUp = spread(m.cancels.results.map((r) => r.hangUpMs));
  const turnEnd = spread(m.cancels.results.map((r) => r.turnEndMs));
  const notes = [
    "TTFT overhead spans the upstream's write, loopback, agentwire reading the stream (fetch), parsing it, the engine and its WebSocket write, loopback, and the client's read.",
    `The fake upstream sends its head and a role chunk at once and the first content ${UPSTREAM_PACING.firstContentDelayMs} ms later, so agentwire is already waiting on the body; ` +
      `for cancels it streams one chunk every ${UPSTREAM_PACING.slowChunkMs} ms.`,
    "Upstream and client share the bench's event loop, which is idle between a write and the matching read; agentwire runs in its own process.",
    `Machine busy (of all cores) during the TTFT turns: ${m.ttft.busy}; during the cancels: ${m.cancels.busy}. A busy host shows up as a long tail in both rows and in the floor.`,
  ];
  if (floor.p99 > TTFT_P99_TARGET_MS) {
    notes.push(
      `The bare echo's own p99 (${num(floor.p99, 3)} ms) is above the ${TTFT_P99_TARGET_MS} ms goal: this host's scheduling sets the tail, ` +
        "so the TTFT p99 verdict says more about the machine than about agentwire; p50 and p90 against the floor do not.",
    );
  }
  const notCancelled = m.cancels.results.filter((r) => r.status !== "cancelled").length;
  if (notCancelled > 0) notes.push(`${notCancelled} cancelled turns ended with another status than "cancelled".`);
  if (m.problems.length > 0) notes.push(`${m.problems.length} client problems; first: ${m.problems[0]}`);
  const judge = (s: Spread, target: number) => (Number.isFinite(s.p99) ? s.p99 <= target : null);
  const targets: Target[] = [
    { label: `TTFT overhead p99 <= ${TTFT_P99_TARGET_MS} ms`, measured: `${num(ttft.p99, 3)} ms`, met: judge(ttft, TTFT_P99_TARGET_MS) },
    { label: `cancel -> upstream close p99 <= ${CANCEL_P99_TARGET_MS} ms`, measured: `${num(hangUp.p99, 3)} ms`, met: judge(hangUp, CANCEL_P99_TARGET_MS) },
  ];
  return { tables: [table(ttft, floor, hangUp, turnEnd, sizes)], notes, targets };
}

export const upstreamLatency: BenchSection = {
  id: "upstream",
  title: "Upstream latency",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const upstream = await FakeOpenAI.start();
    let server: ChildServer | null = null;
    let floor: LoopbackFloor | null = null;
    try {
      server = await startAgentwire({
        env: {
          AGENTWIRE_AGENT: "openai",
          OPENAI_BASE_URL: `http://${HOST}:${upstream.port}/v1`,
          OPENAI_API_KEY: "x",
          AGENTWIRE_MODEL: "m",
          // Turns follow each other as fast as they end; the per-session input limit is not what is measured.
          AGENTWIRE_INPUT_RATE_PER_SESSION: "10000",
          AGENTWIRE_INPUT_BURST_PER_SESSION: "10000",
        },
      });
      floor = await LoopbackFloor.start();
      return report(await measure(ctx, sizes, upstream, server, floor), sizes);
    } finally {
      await floor?.stop();
      await server?.stop();
      await upstream.stop();
    }
  },
};
