// Section: @agentwire/client's own costs. How fast it resumes after a real TCP reset, beside a raw `ws` client
// that reconnects at once with ?afterSeq= (the floor), with the text checked exact over every drop; and its
// CPU per received token in its own process, beside the server's CPU per token in the same window.
import { type ChildProcess, fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { AgentwireClient, type Turn } from "@agentwire/client";
import type { ServerMessage, TurnView } from "@agentwire/protocol";
import WebSocket from "ws";
import type { ClientCpuJob, ClientCpuResult, ClientMode } from "./client-cpu-child.js";
import { profileProcess } from "./cpu-profile.js";
import { type ChildServer, machineCpu } from "./proc.js";
import type { BenchContext, BenchSection, SectionReport, Target } from "./section.js";
import { HOST, startAgentwire } from "./servers/index.js";
import { type CreatedSession, createSessions } from "./servers/agentwire-sessions.js";
import { SPREAD_COLUMNS, type Spread, nowMs, spread, spreadCells } from "./stats.js";
import { num, percent, ratio, type Table } from "./table.js";
import { TcpProxy } from "./tcp-proxy.js";

/** The client's CPU per token may be at most the server's divided by this: the client is never the bottleneck. */
export const CLIENT_CPU_FACTOR_TARGET = 5;

/**
 * Reconnect backoff of the measured client. Full jitter draws the wait from [0, baseMs * 2^attempt), and the
 * attempt count is back at 0 after every welcome, so baseMs 0 makes every wait 0: the SDK reconnects as soon as
 * its own timer fires, as the floor does, and the rows differ by the SDK's work rather than by a random draw.
 */
const RECONNECT = { baseMs: 0, maxMs: 50 };

/** Paced so tokens keep coming while links drop and resume (the demo's timer makes ~1 ms the shortest gap). */
const RESUME_TOKENS_PER_SEC = 1000;
const INPUT = "1 + 2";

interface Sizes {
  /** Measured drops per client, and drops made first and thrown away (JIT, connection paths). */
  drops: number;
  warmupDrops: number;
  /** Wall-clock bound of the drop loop, both clients together. */
  dropBudgetMs: number;
  cpuTokensPerTurn: number;
  warmupMs: number;
  measureMs: number;
  /** Interleaved SDK / floor passes; the median one by the SDK's ratio is reported. */
  rounds: number;
}

const FULL: Sizes = { drops: 200, warmupDrops: 10, dropBudgetMs: 60_000, cpuTokensPerTurn: 50_000, warmupMs: 800, measureMs: 3000, rounds: 3 };
const QUICK: Sizes = { drops: 50, warmupDrops: 5, dropBudgetMs: 20_000, cpuTokensPerTurn: 20_000, warmupMs: 500, measureMs: 1500, rounds: 1 };

/** Longest wait for one resume before the drop counts as failed. */
const RESUME_TIMEOUT_MS = 5000;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- resume: what the application saw

/** The logged-event fields the checks read; the raw client's frames are parsed into this shape too. */
interface Logged {
  type: string;
  seq: number;
  from?: number;
  turn?: string;
  text?: string;
}

interface Probe {
  seqAtDrop: number;
  droppedAt: number;
  /** The client saw the old link end (the SDK's `reconnecting` state, the raw client's close event). */
  endedAt: number | null;
  /** The client constructed the new link's WebSocket. */
  startedAt: number | null;
  /** The new link's `session` welcome: logged events before it still came from the old link's buffers. */
  welcomeAt: number | null;
  resolve(at: number): void;
}

/** Every logged event the application got, in order: seq continuity, the text, and the pending drop's timing. */
class Delivered {
  lastSeq = 0;
  events = 0;
  gaps = 0;
  duplicates = 0;
  text = "";
  turn: string | null = null;
  ended = false;
  problems: string[] = [];
  probe: Probe | null = null;
  private endWaiters: (() => void)[] = [];

  linkEnded(at: number): void {
    if (this.probe && this.probe.endedAt === null) this.probe.endedAt = at;
  }

  linkStarted(at: number): void {
    if (this.probe && this.probe.startedAt === null) this.probe.startedAt = at;
  }

  welcome(at: number): void {
    if (this.probe && this.probe.welcomeAt === null) this.probe.welcomeAt = at;
  }

  logged(m: Logged, at: number): void {
    this.events++;
    const first = m.type === "token" && m.from !== undefined ? m.from : m.seq;
    if (first <= this.lastSeq) {
      this.duplicates++;
      this.problem(`seq ${first}..${m.seq} after ${this.lastSeq}: delivered again`);
    } else if (first > this.lastSeq + 1) {
      this.gaps++;
      this.problem(`seq ${first} after ${this.lastSeq}: ${first - this.lastSeq - 1} events missing`);
    }
    if (m.seq > this.lastSeq) {
      if (m.type === "token") this.text += m.text ?? "";
      this.lastSeq = m.seq;
    }
    if (m.type === "turn_start") this.turn ??= m.turn ?? null;
    if (m.type === "turn_end") {
      this.ended = true;
      for (const wake of this.endWaiters.splice(0)) wake();
    }
    const probe = this.probe;
    if (probe && probe.welcomeAt !== null && m.seq > probe.seqAtDrop) {
      this.probe = null;
      probe.resolve(at);
    }
  }

  problem(text: string): void {
    if (this.problems.length < 20) this.problems.push(text);
  }

  turnEnded(): Promise<void> {
    return this.ended ? Promise.resolve() : new Promise((resolve) => this.endWaiters.push(resolve));
  }
}

const isLogged = (m: ServerMessage): m is ServerMessage & Logged => "seq" in m && typeof m.seq === "number";

interface Side {
  label: string;
  proxy: TcpProxy;
  session: CreatedSession;
  seen: Delivered;
  /** Ends the running turn; resolves once it has. */
  cancel(): Promise<void>;
  /** The SDK's own accumulated turn text, where there is one. */
  sdkText(): string | null;
  close(): void;
}

async function sdkSide(proxy: TcpProxy, session: CreatedSession): Promise<Side> {
  const seen = new Delivered();
  // The `ws` class itself, stamping the moment the SDK starts a link: how long its reconnect timer waited.
  class StampedWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      seen.linkStarted(nowMs());
    }
  }
  const client = new AgentwireClient({
    url: proxy.base,
    session: { ...session, lastSeq: 0 },
    WebSocket: StampedWebSocket,
    store: null,
    transport: "websocket",
    reconnect: RECONNECT,
  });
  client.on("message", (m) => {
    const at = nowMs();
    if (m.type === "session") seen.welcome(at);
    else if (isLogged(m)) seen.logged(m, at);
  });
  client.on("recovered", ({ lastSeq }) => seen.problem(`recovered at ${lastSeq}: the log no longer held the position`));
  client.on("state", (s) => {
    if (s.status === "reconnecting") seen.linkEnded(nowMs());
    if (s.status === "closed" && s.reason?.code !== 1000) seen.problem(`closed: ${s.reason?.code} ${s.reason?.message}`);
  });
  try {
    await within(client.connect(), 10_000, "the SDK client's connect");
  } catch (err) {
    // Not handed back to the caller yet: it would keep reconnecting unless closed here.
    client.close();
    throw err;
  }
  const turn: Turn = client.send(INPUT);
  turn.done.catch((err: unknown) => seen.problem(`input refused: ${String(err)}`));
  return {
    label: "@agentwire/client",
    proxy,
    session,
    seen,
    async cancel() {
      if (!seen.ended) await within(turn.cancel(), 5000, "the SDK's cancel");
      await within(turn.done, 5000, "the SDK turn's end");
    },
    sdkText: () => turn.text,
    close: () => client.close(),
  };
}

/** The floor: the `ws` package alone, reconnecting in its close handler with ?afterSeq= its last seq. */
async function rawSide(proxy: TcpProxy, session: CreatedSession): Promise<Side> {
  const seen = new Delivered();
  let running = true;
  let ws: WebSocket | null = null;
  let welcomed: (() => void) | null = null;
  /** Links in a row that ended before a welcome: past a bound the floor gives up instead of spinning on a dead server. */
  let failures = 0;
  const connect = () => {
    const link = new WebSocket(`ws://${HOST}:${proxy.port}/v1/sessions/${session.sessionId}/ws?afterSeq=${seen.lastSeq}`, ["agentwire.v1", `bearer.${session.token}`]);
    ws = link;
    seen.linkStarted(nowMs());
    link.on("message", (data: Buffer) => {
      const at = nowMs();
      const m = JSON.parse(data.toString()) as ServerMessage;
      if (m.type === "session") {
        failures = 0;
        seen.welcome(at);
        welcomed?.();
        welcomed = null;
      } else if (isLogged(m)) seen.logged(m, at);
    });
    link.on("error", () => {});
    link.on("close", () => {
      seen.linkEnded(nowMs());
      if (!running || ws !== link) return;
      if (++failures > 100) {
        running = false;
        seen.problem("100 reconnects in a row ended before a welcome: the floor gave up");
        return;
      }
      connect();
    });
  };
  const first = new Promise<void>((resolve) => {
    welcomed = resolve;
  });
  connect();
  try {
    await within(first, 10_000, "the raw client's welcome");
  } catch (err) {
    running = false;
    (ws as WebSocket | null)?.terminate();
    throw err;
  }
  (ws as WebSocket | null)?.send(JSON.stringify({ type: "input", text: INPUT }));
  return {
    label: "raw ws, reconnect at once with ?afterSeq=",
    proxy,
    session,
    seen,
    async cancel() {
      if (!seen.ended) (ws as WebSocket | null)?.send(JSON.stringify({ type: "cancel" }));
      await within(seen.turnEnded(), 5000, "the raw turn's end");
    },
    sdkText: () => null,
    close() {
      running = false;
      (ws as WebSocket | null)?.terminate();
    },
  };
}

interface DropTimes {
  endedMs: number;
  startedMs: number;
  welcomeMs: number;
  firstMs: number;
}

/** Resets the side's connections and times the new link's welcome and the first resumed event the application gets. */
async function dropOnce(side: Side): Promise<DropTimes | null> {
  let probe: Probe | null = null;
  const resumed = new Promise<number>((resolve) => {
    probe = { seqAtDrop: side.seen.lastSeq, droppedAt: 0, endedAt: null, startedAt: null, welcomeAt: null, resolve };
  });
  const p = probe as unknown as Probe;
  side.seen.probe = p;
  p.droppedAt = nowMs();
  const cut = side.proxy.resetAll();
  if (cut === 0) side.seen.problem("a drop found no open connection to reset");
  try {
    const at = await within(resumed, RESUME_TIMEOUT_MS, `${side.label}: a resumed event`);
    const since = (t: number | null) => (t ?? Number.NaN) - p.droppedAt;
    return { endedMs: since(p.endedAt), startedMs: since(p.startedAt), welcomeMs: since(p.welcomeAt), firstMs: at - p.droppedAt };
  } catch (err) {
    side.seen.probe = null;
    side.seen.problem(String(err instanceof Error ? err.message : err));
    return null;
  }
}

async function turnView(port: number, session: CreatedSession, turn: string): Promise<TurnView | null> {
  const res = await fetch(`http://${HOST}:${port}/v1/sessions/${session.sessionId}/turns/${turn}`, {
    headers: { authorization: `Bearer ${session.token}` },
    signal: AbortSignal.timeout(5000),
  });
  return res.status === 200 ? ((await res.json()) as TurnView) : null;
}

interface SideResult {
  label: string;
  times: DropTimes[];
  /** Measured drops, then every drop the turn went through (warmup included). */
  drops: number;
  allDrops: number;
  failed: number;
  seen: Delivered;
  /** The server's own record of the turn, after it ended. */
  server: TurnView | null;
  sdkText: string | null;
}

interface Resume {
  sides: SideResult[];
  /** The loop stopped on its time bound (or a turn ended) before every drop was made. */
  cut: string | null;
  busy: string;
  /** Logged events per second per session over the drop loop: the pace the resumes saw. */
  eventsPerSec: number;
}

async function measureResume(ctx: BenchContext, sizes: Sizes): Promise<Resume> {
  // Long enough to outlast the drop loop at its time bound; cancelled once the drops are done.
  const replyWords = Math.ceil((RESUME_TOKENS_PER_SEC * sizes.dropBudgetMs) / 1000) * 2;
  let server: ChildServer | null = null;
  const proxies: TcpProxy[] = [];
  const sides: Side[] = [];
  try {
    server = await startAgentwire({ tokensPerTurn: replyWords, env: { AGENTWIRE_DEMO_TOKENS_PER_SEC: String(RESUME_TOKENS_PER_SEC) } });
    const [a, b] = (await createSessions(HOST, server.port, 2)) as [CreatedSession, CreatedSession];
    for (let i = 0; i < 2; i++) proxies.push(await TcpProxy.start(server.port));
    sides.push(await sdkSide(proxies[0] as TcpProxy, a), await rawSide(proxies[1] as TcpProxy, b));
    // Into the reply, past the intro and the tool call, before the first drop.
    await delay(300);
    const times = sides.map(() => [] as DropTimes[]);
    const failed = sides.map(() => 0);
    const made = sides.map(() => 0);
    const total = sides.map(() => 0);
    const started = nowMs();
    const deadline = started + sizes.dropBudgetMs;
    const before = machineCpu().busyMs;
    const seqBefore = sides.map((s) => s.seen.lastSeq);
    ctx.log(`client: ${sizes.warmupDrops} warmup drops, then up to ${sizes.drops} TCP resets per client, alternating`);
    let cut: string | null = null;
    for (let i = -sizes.warmupDrops; i < sizes.drops; i++) {
      if (nowMs() >= deadline) {
        cut = `the ${num(sizes.dropBudgetMs / 1000)} s bound`;
        break;
      }
      if (sides.some((s) => s.seen.ended)) {
        cut = "a turn ended";
        break;
      }
      for (const [k, side] of sides.entries()) {
        // Drops land at every phase of the token timer, not in step with it.
        await delay(4 + ((((i * 7 + k * 3) % 13) + 13) % 13));
        const t = await dropOnce(side);
        total[k] = (total[k] ?? 0) + 1;
        if (i < 0) continue;
        made[k] = (made[k] ?? 0) + 1;
        if (t) times[k]?.push(t);
        else failed[k] = (failed[k] ?? 0) + 1;
      }
    }
    const elapsedMs = nowMs() - started;
    const busy = percent(machineCpu().busyMs - before, elapsedMs * availableParallelism());
    const eventsPerSec = sides.reduce((n, s, k) => n + s.seen.lastSeq - (seqBefore[k] ?? 0), 0) / sides.length / (elapsedMs / 1000);
    ctx.log("client: cancelling the turns and checking the text against the server's");
    const results: SideResult[] = [];
    for (const [k, side] of sides.entries()) {
      await side.cancel().catch((err: unknown) => side.seen.problem(String(err instanceof Error ? err.message : err)));
      const view = side.seen.turn ? await turnView(server.port, side.session, side.seen.turn).catch(() => null) : null;
      results.push({ label: side.label, times: times[k] ?? [], drops: made[k] ?? 0, allDrops: total[k] ?? 0, failed: failed[k] ?? 0, seen: side.seen, server: view, sdkText: side.sdkText() });
    }
    return { sides: results, cut, busy, eventsPerSec };
  } finally {
    for (const side of sides) side.close();
    for (const proxy of proxies) await proxy.close();
    await server?.stop();
  }
}

// ---------------------------------------------------------------- client CPU per token

interface CpuRun {
  mode: ClientMode;
  result: ClientCpuResult;
  clientUs: number;
  serverUs: number;
  /** Server CPU per token over client CPU per token: how many times cheaper the client's token is. */
  factor: number;
}

const CHILD = fileURLToPath(new URL("./client-cpu-child.js", import.meta.url));

/** Forks the client child, hands it the job, and returns its figures; the child is killed if it overstays. */
function forkClient(job: ClientCpuJob, execArgv: string[] = []): Promise<ClientCpuResult> {
  const child: ChildProcess = fork(CHILD, [], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const answer = new Promise<ClientCpuResult>((resolve, reject) => {
    child.on("message", (message) => {
      const reply = message as { ok: true; result: ClientCpuResult } | { ok: false; error: string };
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.error));
    });
    void exited.then((code) => reject(new Error(`the client child exited with ${code} and no result`)));
  });
  child.send(job);
  const bound = job.warmupMs + job.measureMs + 20_000;
  return within(answer, bound, "the client child's result").finally(async () => {
    // --cpu-prof writes its file as the child exits: wait for the exit rather than kill a child that is finishing.
    const gone = await Promise.race([exited.then(() => true), delay(5000).then(() => false)]);
    if (!gone && child.pid !== undefined) {
      child.kill("SIGKILL");
      await exited;
    }
  });
}

async function measureCpu(mode: ClientMode, sizes: Sizes, execArgv?: string[]): Promise<CpuRun> {
  const server = await startAgentwire({ tokensPerTurn: sizes.cpuTokensPerTurn });
  try {
    const [session] = (await createSessions(HOST, server.port, 1)) as [CreatedSession];
    const result = await forkClient(
      { mode, host: HOST, port: server.port, serverPid: server.pid, session, input: INPUT, warmupMs: sizes.warmupMs, measureMs: sizes.measureMs },
      execArgv,
    );
    const clientUs = (result.clientCpuMs * 1000) / result.tokens;
    const serverUs = (result.serverCpuMs * 1000) / result.tokens;
    return { mode, result, clientUs, serverUs, factor: serverUs / clientUs };
  } finally {
    await server.stop();
  }
}

/** Share of one core above which a process counts as saturated. */
const SATURATED = 0.9;

function limitOf(r: ClientCpuResult): string {
  if (r.clientCpuMs / r.elapsedMs >= SATURATED) return "CLIENT CPU";
  if (r.serverCpuMs / r.elapsedMs >= SATURATED) return "server CPU";
  return "neither (waits, or the host)";
}

const MODE_LABEL: Record<ClientMode, string> = { sdk: "@agentwire/client", raw: "raw ws + JSON.parse" };

// ---------------------------------------------------------------- report

function resumeTable(r: Resume, sizes: Sizes): Table {
  const [sdk, raw] = r.sides as [SideResult, SideResult];
  const first = (s: SideResult) => spread(s.times.map((t) => t.firstMs));
  const welcome = (s: SideResult) => spread(s.times.map((t) => t.welcomeMs));
  const ended = (s: SideResult) => spread(s.times.map((t) => t.endedMs));
  const started = (s: SideResult) => spread(s.times.map((t) => t.startedMs));
  const floor = first(raw);
  const ratios = (s: Spread) => [num(s.count), ratio(s.p50, floor.p50), ratio(s.p90, floor.p90), ratio(s.p99, floor.p99), ratio(s.max, floor.max)];
  return {
    title:
      `Client resume after a TCP reset (both sides, through a proxy): demo turn paced at ${num(RESUME_TOKENS_PER_SEC)} tokens/s, ` +
      `up to ${sizes.drops} drops per client, alternating; reconnect { baseMs: ${RECONNECT.baseMs}, maxMs: ${RECONNECT.maxMs} }`,
    columns: ["", ...SPREAD_COLUMNS],
    rows: [
      ["@agentwire/client: reset -> first resumed event (on message)", ...spreadCells(first(sdk))],
      ["  vs raw ws floor", ...ratios(first(sdk))],
      ["@agentwire/client: reset -> session welcome", ...spreadCells(welcome(sdk))],
      ["@agentwire/client: reset -> new WebSocket constructed", ...spreadCells(started(sdk))],
      ["@agentwire/client: reset -> old link's end seen (state reconnecting)", ...spreadCells(ended(sdk))],
      null,
      ["raw ws floor: reset -> first resumed event", ...spreadCells(floor)],
      ["raw ws floor: reset -> session welcome", ...spreadCells(welcome(raw))],
      ["raw ws floor: reset -> new WebSocket constructed", ...spreadCells(started(raw))],
      ["raw ws floor: reset -> old link's close event", ...spreadCells(ended(raw))],
    ],
  };
}

/** Whether the application's text is exactly the server's: no gap, no duplicate, nothing changed. */
function exact(s: SideResult): boolean {
  const serverText = s.server?.text;
  return (
    s.seen.gaps === 0 &&
    s.seen.duplicates === 0 &&
    s.server !== null &&
    s.seen.text === serverText &&
    (s.sdkText === null || s.sdkText === serverText) &&
    s.seen.lastSeq === s.server.lastSeq
  );
}

function exactTable(r: Resume): Table {
  return {
    title: "Client resume: what the application got over all drops (warmup drops included), against the server's record of the turn",
    columns: ["client", "drops", "timed resumes", "logged events", "gaps", "duplicates", "last seq (server's)", "text chars (server's)", "exact"],
    rows: r.sides.map((s) => [
      s.label,
      num(s.allDrops),
      num(s.times.length),
      num(s.seen.events),
      num(s.seen.gaps),
      num(s.seen.duplicates),
      `${num(s.seen.lastSeq)} (${num(s.server?.lastSeq)})`,
      `${num(s.seen.text.length)} (${num(s.server?.text.length)})`,
      exact(s) ? "yes" : "NO",
    ]),
  };
}

function cpuTable(chosen: Map<ClientMode, CpuRun>, all: Map<ClientMode, CpuRun[]>, sizes: Sizes): Table {
  const modes: ClientMode[] = ["sdk", "raw"];
  const col = (f: (r: CpuRun) => string) => modes.map((m) => {
    const r = chosen.get(m);
    return r ? f(r) : "-";
  });
  const cores = availableParallelism();
  const perSec = (r: CpuRun, n: number) => (n * 1000) / r.result.elapsedMs;
  return {
    title:
      `Client CPU per token: one client of one session in its own process, demo agent streaming ${num(sizes.cpuTokensPerTurn)}-token turns ` +
      `as fast as it can, ${num(sizes.measureMs / 1000, 1)} s window, ` +
      (sizes.rounds > 1 ? `median of ${sizes.rounds} rounds by the ratio` : "1 round"),
    columns: ["", ...modes.map((m) => MODE_LABEL[m])],
    rows: [
      ["client CPU per token (us)", ...col((r) => num(r.clientUs, 3))],
      ["  vs raw ws + JSON.parse", ...col((r) => ratio(r.clientUs, chosen.get("raw")?.clientUs))],
      ["server CPU per token, same window (us)", ...col((r) => num(r.serverUs, 3))],
      [`server / client CPU per token (target >= ${CLIENT_CPU_FACTOR_TARGET})`, ...col((r) => `${num(r.factor, 2)}x`)],
      ["  all rounds", ...modes.map((m) => (all.get(m) ?? []).map((r) => `${num(r.factor, 2)}x`).join(" / "))],
      ["client CPU per token frame (us)", ...col((r) => num((r.result.clientCpuMs * 1000) / r.result.tokenFrames, 3))],
      null,
      ["tokens/s delivered", ...col((r) => num(perSec(r, r.result.tokens)))],
      ["token frames/s", ...col((r) => num(perSec(r, r.result.tokenFrames)))],
      ["merged frames (from)", ...col((r) => percent(r.result.mergedFrames, r.result.tokenFrames, 1))],
      ["turns completed", ...col((r) => num(r.result.turns))],
      ["client CPU (of one core)", ...col((r) => percent(r.result.clientCpuMs, r.result.elapsedMs))],
      ["server CPU (of one core)", ...col((r) => percent(r.result.serverCpuMs, r.result.elapsedMs))],
      [`machine busy (of ${cores} cores)`, ...col((r) => percent(r.result.machineBusyMs, r.result.elapsedMs * cores))],
      ["  stolen by the host", ...col((r) => percent(r.result.machineStealMs, r.result.elapsedMs * cores))],
      ["limited by", ...col((r) => limitOf(r.result))],
    ],
  };
}

function median(runs: CpuRun[]): CpuRun | undefined {
  const sorted = [...runs].sort((a, b) => a.factor - b.factor);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

export const clientSection: BenchSection = {
  id: "client",
  title: "@agentwire/client",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const notes: string[] = [];
    const targets: Target[] = [];
    const tables: Table[] = [];

    const resume = await measureResume(ctx, sizes);
    tables.push(resumeTable(resume, sizes), exactTable(resume));
    notes.push(
      "Resume: agentwire in a child process behind a TCP proxy in the bench process; a drop resets both of a client's proxied connections (RST), " +
        "and the clock runs from just before the reset to the application's handler seeing the first logged event of the new link " +
        "(after its session welcome, seq above the last one delivered before the drop). Proxy, clients and clock share the bench's event loop.",
      `The SDK's reconnect backoff is { baseMs: ${RECONNECT.baseMs} }: full jitter over [0, baseMs * 2^attempt) with the attempt reset by each welcome makes every wait 0, ` +
        "so the SDK row carries no random wait; its reconnect still goes through a setTimeout, which Node never fires sooner than 1 ms. " +
        "With the default { baseMs: 500 } the first retry alone waits a uniform 0-500 ms (250 ms median).",
      `The floor is the \`ws\` package alone: on its close event it opens a new link at once with ?afterSeq= its last seq, parsing every frame with JSON.parse as the SDK does. ` +
        `Tokens come about every ${num(1000 / RESUME_TOKENS_PER_SEC, 1)} ms (or slower: the demo's timer), so a resume that beats the next token waits for it; both rows share that wait.`,
      `Events arrived at ${num(resume.eventsPerSec)}/s per session over the drop loop. Machine busy (of all cores) during the drops: ${resume.busy}.`,
    );
    if (resume.cut) notes.push(`The drop loop stopped early (${resume.cut}): fewer samples than asked for.`);
    for (const s of resume.sides) {
      if (s.failed > 0) notes.push(`${s.label}: ${s.failed} drops saw no resumed event within ${RESUME_TIMEOUT_MS} ms.`);
      if (s.seen.problems.length > 0) notes.push(`${s.label}: ${s.seen.problems.length} problems; first: ${s.seen.problems[0]}`);
      if (!s.server) notes.push(`${s.label}: the server's record of the turn could not be read.`);
    }
    const exactAll = resume.sides.every(exact);
    targets.push({
      label: "client text exact over every TCP reset (no gap, no duplicate seq)",
      measured: resume.sides.map((s) => `${s.seen.gaps} gaps, ${s.seen.duplicates} dups over ${s.allDrops} drops`).join("; "),
      met: resume.sides.every((s) => s.server !== null) ? exactAll : null,
    });

    const all = new Map<ClientMode, CpuRun[]>([
      ["sdk", []],
      ["raw", []],
    ]);
    for (let round = 1; round <= sizes.rounds; round++) {
      for (const mode of ["sdk", "raw"] as const) {
        ctx.log(`client: CPU round ${round}/${sizes.rounds}: ${MODE_LABEL[mode]}, ${num(sizes.cpuTokensPerTurn)}-token turns`);
        const run = await measureCpu(mode, sizes);
        if (run.result.errors > 0) notes.push(`${MODE_LABEL[mode]}, round ${round}: ${run.result.errors} errors; first: ${run.result.firstError}`);
        all.get(mode)?.push(run);
      }
    }
    const chosen = new Map<ClientMode, CpuRun>();
    for (const [mode, runs] of all) {
      const m = median(runs);
      if (m) chosen.set(mode, m);
    }
    tables.push(cpuTable(chosen, all, sizes));
    notes.push(
      "Client CPU: utime+stime of the client child from /proc/<pid>/stat (all threads, GC included), read by the child itself at the window's edges " +
        "together with its token counters and the server's /proc/<pid>/stat; the application only counts tokens in client.on(\"message\").",
      "A client that falls behind can make the server merge tokens into fewer frames (merged frames row), which lowers both processes' CPU per token; " +
        "CPU per frame shows the client's cost without that help. Loopback TCP work done in softirq context is charged to neither process.",
      "The server's figure is its cost for this one session streaming as fast as this client takes it, which is above its cost per token with several sessions (the cpu section).",
    );
    const sdk = chosen.get("sdk");
    const met = sdk && Number.isFinite(sdk.factor) ? sdk.factor >= CLIENT_CPU_FACTOR_TARGET : null;
    targets.push({
      label: `client CPU per token <= server's / ${CLIENT_CPU_FACTOR_TARGET}`,
      measured: sdk ? `${num(sdk.clientUs, 3)} us vs ${num(sdk.serverUs, 3)} us (${num(sdk.factor, 2)}x)` : "-",
      met,
    });
    if (sdk && limitOf(sdk.result) === "CLIENT CPU") notes.push("@agentwire/client saturated its core: the client, not the server, set the pace.");
    if (ctx.profile || met === false) {
      ctx.log("client: profiling the SDK client child under --cpu-prof");
      tables.push(...(await profileProcess(ctx, "@agentwire/client child", (execArgv) => measureCpu("sdk", sizes, execArgv))));
      notes.push("The profile is of one more SDK run (window and warmup, the client's connect included), taken because the target was missed or --profile was given.");
    }
    return { tables, notes, targets };
  },
};
