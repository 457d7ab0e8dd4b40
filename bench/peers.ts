// Section: agentwire beside what people build token streamers with (Socket.IO on both engines, Express+ws, an Express SSE endpoint), measured in the same run as the bare baselines.
import { availableParallelism } from "node:os";
import { type Measured as CpuMeasured, type Sizes as CpuSizes, limitOf, measure as measureCpu } from "./cpu-per-token.js";
import { type Measured as MemoryMeasured, marginal, measure as measureMemory, perLink } from "./idle-memory.js";
import { type ChildServer, settledRssKb } from "./proc.js";
import { openManySse } from "./raw-sse-client.js";
import type { BenchContext, BenchSection, SectionReport } from "./section.js";
import { type CreatedSession, createSessions } from "./servers/agentwire-sessions.js";
import { type ServerKind, HOST, PEER_KINDS, startAgentwire, startExpressSse } from "./servers/index.js";
import { num, percent, ratio, type Table } from "./table.js";
import { type LoadResult, forkTokenLoad } from "./token-load.js";

interface Sizes extends CpuSizes {
  /** Idle WebSocket links per server. */
  idleLinks: number;
  /** Idle event streams per SSE server. */
  idleStreams: number;
}

const FULL: Sizes = { sessions: 8, tokensPerTurn: 50_000, warmupMs: 800, measureMs: 3000, rounds: 3, idleLinks: 10_000, idleStreams: 10_000 };
const QUICK: Sizes = { sessions: 4, tokensPerTurn: 20_000, warmupMs: 500, measureMs: 1500, rounds: 1, idleLinks: 2000, idleStreams: 2000 };

/** Servers whose sockets are uWebSockets.js's: they are slow and unfair to compare if its JS fallback ran. */
const ON_UWS = new Set<ServerKind["id"]>(["agentwire", "uws", "sio-uws"]);

/** How each column streams, one note line each. */
const HOW: Record<ServerKind["id"], string> = {
  agentwire: "agentwire: `agentwire serve` with the demo agent at full speed, as `npm start` runs it (uWS, its own outbox and merging for lagging readers).",
  uws: "bare uWS: uWebSockets.js, JSON.stringify per token, 64 frames per cork, waits for drain above 64 KB buffered (as in the CPU section).",
  ws: "bare ws: the ws package on its own server, the same loop with 64 frames per TCP cork, the socket's drain above 64 KB (as in the CPU section).",
  "sio-ws":
    "Socket.IO (ws): `new Server(httpServer)` on node:http with default options (ws engine, no compression), the client skipping polling " +
    '(EIO=4, transport=websocket); one `socket.emit("t", frame)` per token with the frame object, which Socket.IO serializes as `42["t",{...}]` ' +
    "(8 bytes more than the bare frame); engine.io queues packets while its transport writes and flushes them together; the stream waits for " +
    "engine.io's drain above 1,024 queued packets (Socket.IO has no backpressure API).",
  "sio-uws":
    "Socket.IO (uWS): `new Server()` + `io.attachApp(uWS.App())`, default options; the same emit per token, which engine.io's uWS transport " +
    "hands to uWS at once, one uncorked send per token (uWS writes each to the socket unless it is backed up); it reports no drain, so the " +
    "stream reads the uWS socket's buffered amount between batches and looks again after 1 ms above 64 KB.",
  "express-ws":
    "Express+ws: an Express app's node:http server with `new WebSocketServer({ server, path })`, ws defaults; one `ws.send(JSON.stringify(token))` " +
    "per token and no cork, as a hand-rolled server writes it (each send goes to the socket at once, joined with others in a writev only " +
    "behind a pending write); bufferedAmount checked every 64 tokens, the socket's drain resumes.",
};

const SSE_HOW =
  "Express SSE: Express 5 with express.json(); the GET answers `res.writeHead(200, text/event-stream)`, then one " +
  '`res.write("id: N\\ndata: {...}\\n\\n")` per token (Node corks the socket until the next tick and adds chunked framing), waiting for ' +
  "drain when write answers false; a POSTed `{go: N}` starts a turn; a heartbeat comment every 15 s as agentwire's; it serves agentwire's " +
  "paths, so one SSE load client drives both. agentwire's token events also carry an `event: token` line.";

// ---- SSE: agentwire's route and the Express peer, same load client.

interface SseKind {
  id: "agentwire-sse" | "express-sse";
  label: string;
  start(tokensPerTurn: number): Promise<ChildServer>;
  /** What the streams attach to: agentwire creates sessions, the peer takes any id (`prefix` keeps batches apart). */
  sessions(server: ChildServer, count: number, prefix: string): Promise<CreatedSession[]>;
  /** POSTed to start one turn. */
  inputBody(tokens: number): string;
}

const SSE_KINDS: readonly SseKind[] = [
  {
    id: "agentwire-sse",
    label: "agentwire SSE",
    start: (tokensPerTurn) => startAgentwire({ tokensPerTurn }),
    sessions: (server, count) => createSessions(HOST, server.port, count),
    inputBody: () => JSON.stringify({ type: "input", text: "1 + 2" }),
  },
  {
    id: "express-sse",
    label: "Express SSE",
    start: () => startExpressSse(),
    sessions: async (_server, count, prefix) => Array.from({ length: count }, (_, i) => ({ sessionId: `${prefix}${i}`, token: "-" })),
    inputBody: (tokens) => JSON.stringify({ go: tokens }),
  },
];

const eventsPath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/events?token=${s.token}`;

interface SseStreaming {
  kind: SseKind;
  load: LoadResult;
  usPerToken: number;
  spread: number[];
}

async function measureSseStreaming(kind: SseKind, sizes: Sizes): Promise<SseStreaming> {
  const server = await kind.start(sizes.tokensPerTurn);
  try {
    const sessions = await kind.sessions(server, sizes.sessions, "load");
    const load = await forkTokenLoad({
      transport: "sse",
      host: HOST,
      port: server.port,
      serverPid: server.pid,
      sessions,
      inputBody: kind.inputBody(sizes.tokensPerTurn),
      warmupMs: sizes.warmupMs,
      measureMs: sizes.measureMs,
    });
    const usPerToken = (load.serverCpuMs * 1000) / load.tokens;
    return { kind, load, usPerToken, spread: [usPerToken] };
  } finally {
    await server.stop();
  }
}

interface SseIdle {
  kind: SseKind;
  beforeKb: number;
  /** Once the sessions exist, before any stream (the peer has none: equal to before). */
  sessionsKb: number;
  afterKb: number;
  count: number;
}

async function measureSseIdle(kind: SseKind, count: number, ctx: BenchContext): Promise<SseIdle> {
  const server = await kind.start(16);
  let streams: { close(): void }[] = [];
  try {
    // First-use code and buffers count as "before": open and close a few streams first.
    for (const s of await openManySse(HOST, server.port, (await kind.sessions(server, 64, "warm")).map(eventsPath))) s.close();
    const beforeKb = await settledRssKb(server.pid);
    const sessions = await kind.sessions(server, count, "idle");
    const sessionsKb = kind.id === "agentwire-sse" ? await settledRssKb(server.pid) : beforeKb;
    const started = performance.now();
    streams = await openManySse(HOST, server.port, sessions.map(eventsPath));
    ctx.log(`peers: ${kind.label}: ${count} idle streams open in ${num((performance.now() - started) / 1000, 1)} s`);
    const afterKb = await settledRssKb(server.pid);
    return { kind, beforeKb, sessionsKb, afterKb, count };
  } finally {
    for (const s of streams) s.close();
    await server.stop();
  }
}

// ---- Tables.

const cores = availableParallelism();
const perSec = (load: LoadResult, n: number) => (n * 1000) / load.elapsedMs;
const rounds = (n: number) => `best of ${n} round${n > 1 ? "s" : ""}`;

/** The rows every streaming table ends with: who used the CPU, and what set the pace. */
function loadRows(loads: LoadResult[]): string[][] {
  const col = (f: (l: LoadResult) => string) => loads.map(f);
  return [
    ["server CPU (of one core)", ...col((l) => percent(l.serverCpuMs, l.elapsedMs))],
    ["client CPU (of one core)", ...col((l) => percent(l.clientCpuMs, l.elapsedMs))],
    [`machine busy (of ${cores} cores)`, ...col((l) => percent(l.machineBusyMs, l.elapsedMs * cores))],
    ["  stolen by the host", ...col((l) => percent(l.machineStealMs, l.elapsedMs * cores))],
    ["limited by", ...col((l) => limitOf(l))],
  ];
}

function cpuTable(results: CpuMeasured[], sizes: Sizes): Table {
  const base = results.find((r) => r.kind.id === "uws");
  const aw = results.find((r) => r.kind.id === "agentwire");
  const col = (f: (r: CpuMeasured) => string) => results.map(f);
  return {
    title:
      `Peers, CPU per delivered token over WebSocket: ${sizes.sessions} connections streaming ${num(sizes.tokensPerTurn)}-token turns back to back, ` +
      `${num(sizes.measureMs / 1000, 1)} s window, ${rounds(sizes.rounds)}`,
    columns: ["", ...col((r) => r.kind.label)],
    rows: [
      ["server CPU per token (us)", ...col((r) => num(r.usPerToken, 3))],
      ["  vs bare uWS", ...col((r) => ratio(r.usPerToken, base?.usPerToken))],
      ["  vs agentwire", ...col((r) => ratio(r.usPerToken, aw?.usPerToken))],
      ["  all rounds (us)", ...col((r) => r.spread.map((v) => num(v, 3)).join(" / "))],
      ["tokens/s delivered", ...col((r) => num(perSec(r.load, r.load.tokens)))],
      ["token frames/s", ...col((r) => num(perSec(r.load, r.load.tokenFrames)))],
      ["merged frames (from)", ...col((r) => percent(r.load.mergedFrames, r.load.tokenFrames, 1))],
      ["bytes per token on the wire", ...col((r) => num(r.load.bytes / r.load.tokens, 1))],
      ["MB/s received", ...col((r) => num(perSec(r.load, r.load.bytes) / 1e6, 1))],
      ["turns completed", ...col((r) => num(r.load.turns))],
      null,
      ...loadRows(results.map((r) => r.load)),
    ],
  };
}

function memoryTable(results: MemoryMeasured[], count: number): Table {
  const base = results.find((r) => r.kind.id === "uws");
  const aw = results.find((r) => r.kind.id === "agentwire");
  const col = (f: (r: MemoryMeasured) => string) => results.map(f);
  const of = (r: MemoryMeasured | undefined, f: (m: MemoryMeasured) => number) => (r ? f(r) : null);
  const mb = (kb: number) => num(kb / 1024, 1);
  return {
    title: `Peers, idle memory: ${num(count)} idle WebSocket connections each (agentwire: ${num(count)} sessions with an idle WebSocket each)`,
    columns: ["", ...col((r) => r.kind.label)],
    rows: [
      ["RSS before (MB)", ...col((r) => mb(r.beforeKb))],
      ["RSS with idle connections (MB)", ...col((r) => mb(r.afterKb))],
      null,
      ["KB per idle connection", ...col((r) => num(perLink(r), 2))],
      ["  vs bare uWS", ...col((r) => ratio(perLink(r), of(base, perLink)))],
      ["  vs agentwire", ...col((r) => ratio(perLink(r), of(aw, perLink)))],
      ["marginal KB, second half", ...col((r) => num(marginal(r), 2))],
      ["  vs bare uWS", ...col((r) => ratio(marginal(r), of(base, marginal)))],
      ["  vs agentwire", ...col((r) => ratio(marginal(r), of(aw, marginal)))],
    ],
  };
}

function sseTable(streaming: SseStreaming[], idle: SseIdle[], sizes: Sizes): Table {
  const aw = streaming.find((r) => r.kind.id === "agentwire-sse");
  const awIdle = idle.find((r) => r.kind.id === "agentwire-sse");
  const col = (f: (r: SseStreaming) => string) => streaming.map(f);
  const idleCol = (f: (r: SseIdle) => string) => idle.map(f);
  const stream = (r: SseIdle) => (r.afterKb - r.sessionsKb) / r.count;
  const whole = (r: SseIdle) => (r.afterKb - r.beforeKb) / r.count;
  return {
    title:
      `Peers, SSE: ${sizes.sessions} streams of ${num(sizes.tokensPerTurn)}-token turns back to back, ${num(sizes.measureMs / 1000, 1)} s window, ` +
      `${rounds(sizes.rounds)}; then ${num(sizes.idleStreams)} idle streams`,
    columns: ["", ...col((r) => r.kind.label)],
    rows: [
      ["server CPU per token event (us)", ...col((r) => num(r.usPerToken, 3))],
      ["  vs agentwire SSE", ...col((r) => ratio(r.usPerToken, aw?.usPerToken))],
      ["  all rounds (us)", ...col((r) => r.spread.map((v) => num(v, 3)).join(" / "))],
      ["token events/s delivered", ...col((r) => num(perSec(r.load, r.load.tokens)))],
      ["merged frames (from)", ...col((r) => percent(r.load.mergedFrames, r.load.tokenFrames, 1))],
      ["bytes per token on the wire", ...col((r) => num(r.load.bytes / r.load.tokens, 1))],
      ["MB/s received", ...col((r) => num(perSec(r.load, r.load.bytes) / 1e6, 1))],
      ["turns completed", ...col((r) => num(r.load.turns))],
      null,
      ...loadRows(streaming.map((r) => r.load)),
      null,
      ["idle: RSS before (MB)", ...idleCol((r) => num(r.beforeKb / 1024, 1))],
      ["idle: RSS with streams (MB)", ...idleCol((r) => num(r.afterKb / 1024, 1))],
      ["KB per idle stream (session excluded)", ...idleCol((r) => num(stream(r), 2))],
      ["  vs agentwire SSE", ...idleCol((r) => ratio(stream(r), awIdle ? stream(awIdle) : null))],
      ["KB per idle stream + its session", ...idleCol((r) => num(whole(r), 2))],
      ["  vs agentwire SSE", ...idleCol((r) => ratio(whole(r), awIdle ? whole(awIdle) : null))],
    ],
  };
}

/** Keeps the round with the lowest CPU per token (the least disturbed), and every round's figure. */
function keepBest<K, M extends { usPerToken: number; spread: number[] }>(best: Map<K, M>, key: K, m: M): void {
  const prev = best.get(key);
  const spread = [...(prev?.spread ?? []), m.usPerToken];
  best.set(key, prev && prev.usPerToken <= m.usPerToken ? { ...prev, spread } : { ...m, spread });
}

/** Share of the cores used by neither server nor client, over the reported windows; above this the run says the machine was busy. */
const OTHERS_BUSY = 0.3;

/** Cores' worth of CPU that processes other than server and client used, averaged over the windows. */
function othersCores(loads: LoadResult[]): number {
  const elapsed = loads.reduce((n, l) => n + l.elapsedMs, 0);
  const others = loads.reduce((n, l) => n + Math.max(0, l.machineBusyMs - l.serverCpuMs - l.clientCpuMs), 0);
  return elapsed > 0 ? others / elapsed : 0;
}

function limitNote(label: string, load: LoadResult): string | null {
  const limit = limitOf(load);
  if (limit === "server CPU") return null;
  if (limit === "CLIENT CPU") return `${label}: the load client, not the server, was the limit; CPU per token still holds, tokens/s is a floor.`;
  return `${label}: neither server nor client used a full core (${limit}); CPU per token still holds, tokens/s is a floor.`;
}

export const peers: BenchSection = {
  id: "peers",
  title: "Peers",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const notes: string[] = [
      "Measured as the CPU and memory sections do, in this run: server utime+stime from /proc/<pid>/stat over the window, VmRSS once it stops moving; every server is a child with agentwire's Node flags and streams the bare servers' token frames.",
      "One load client process on raw sockets drives every server: Socket.IO links speak engine.io v4 directly (EIO=4 websocket handshake, `40` connect, pongs) and count the `42[...]` event frames by bytes; SSE streams reuse the SSE client's byte reader.",
    ];
    const best = new Map<ServerKind, CpuMeasured>();
    const bestSse = new Map<SseKind, SseStreaming>();
    // Interleaved rounds spread a noisy neighbour's bursts over every server instead of one.
    for (let round = 1; round <= sizes.rounds; round++) {
      for (const kind of PEER_KINDS) {
        ctx.log(`peers: round ${round}/${sizes.rounds}: ${kind.label}: ${sizes.sessions} connections x ${sizes.tokensPerTurn} tokens`);
        const m = await measureCpu(kind, sizes);
        if (m.load.errors > 0) notes.push(`${kind.label}, round ${round}: ${m.load.errors} error frames or dropped links; first: ${m.load.firstError}`);
        keepBest(best, kind, m);
      }
      for (const kind of SSE_KINDS) {
        ctx.log(`peers: round ${round}/${sizes.rounds}: ${kind.label}: ${sizes.sessions} streams x ${sizes.tokensPerTurn} tokens`);
        const m = await measureSseStreaming(kind, sizes);
        if (m.load.errors > 0) notes.push(`${kind.label}, round ${round}: ${m.load.errors} errors; first: ${m.load.firstError}`);
        keepBest(bestSse, kind, m);
      }
    }
    const cpu = PEER_KINDS.map((kind) => best.get(kind) as CpuMeasured);
    const sse = SSE_KINDS.map((kind) => bestSse.get(kind) as SseStreaming);

    const memory: MemoryMeasured[] = [];
    for (const kind of PEER_KINDS) {
      ctx.log(`peers: ${kind.label}: ${sizes.idleLinks} idle links`);
      memory.push(await measureMemory(kind, sizes.idleLinks, ctx));
    }
    const sseIdle: SseIdle[] = [];
    for (const kind of SSE_KINDS) {
      ctx.log(`peers: ${kind.label}: ${sizes.idleStreams} idle streams`);
      sseIdle.push(await measureSseIdle(kind, sizes.idleStreams, ctx));
    }

    for (const kind of PEER_KINDS) notes.push(HOW[kind.id]);
    notes.push(SSE_HOW);
    notes.push(
      "agentwire's idle figure includes its session (created over HTTP before the link attaches); the others hold a connection and nothing else. Socket.IO's includes its ping timer, every SSE stream a heartbeat timer.",
    );
    for (const r of cpu) {
      const note = limitNote(r.kind.label, r.load);
      if (note) notes.push(note);
      if (ON_UWS.has(r.kind.id) && !r.nativeUws) notes.push(`${r.kind.label}: uWebSockets.js ran its JS fallback, not the native binary.`);
    }
    for (const r of sse) {
      const note = limitNote(r.kind.label, r.load);
      if (note) notes.push(note);
    }
    for (const r of [...cpu, ...sse]) {
      if (r.load.turns === 0) {
        notes.push(`${r.kind.label}: no turn ended inside the window (at this rate one turn outlasts it); every token counts all the same.`);
      }
    }
    const loads = [...cpu, ...sse].map((r) => r.load);
    const busy = othersCores(loads);
    if (busy >= OTHERS_BUSY) {
      notes.push(
        `The machine was busy: other processes used ${busy.toFixed(2)} of ${cores} cores on average over the reported windows, so tokens/s are floors ` +
          "and CPU per token is noisier than on a quiet host (see each column's rounds).",
      );
    }
    return { tables: [cpuTable(cpu, sizes), memoryTable(memory, sizes.idleLinks), sseTable(sse, sseIdle, sizes)], notes, targets: [] };
  },
};
