// Section: agentwire's SSE route beside its WebSocket route: server CPU per delivered token, events/s, and RSS per idle stream.
import { availableParallelism } from "node:os";
import { limitOf, loadRows } from "./cpu-per-token.js";
import { profileAgentwire } from "./cpu-profile.js";
import { type ChildServer, settledRssKb } from "./proc.js";
import { openManySse } from "./raw-sse-client.js";
import { openMany } from "./raw-ws-client.js";
import type { BenchContext, BenchSection, SectionReport } from "./section.js";
import { HOST, startAgentwire } from "./servers/index.js";
import { type CreatedSession, createSessions } from "./servers/agentwire-sessions.js";
import { num, percent, ratio, type Table } from "./table.js";
import { type LoadResult, forkTokenLoad } from "./token-load.js";

/** SSE may spend at most this multiple of the WebSocket route's CPU per delivered event. */
export const SSE_CPU_RATIO_TARGET = 1.5;

type Transport = "ws" | "sse";
const LABEL: Record<Transport, string> = { ws: "WebSocket", sse: "SSE" };
const TRANSPORTS: readonly Transport[] = ["ws", "sse"];

interface Sizes {
  sessions: number;
  tokensPerTurn: number;
  warmupMs: number;
  measureMs: number;
  /** Interleaved passes over both routes; the least disturbed one (lowest CPU per token) is reported. */
  rounds: number;
  idleStreams: number;
}

const FULL: Sizes = { sessions: 8, tokensPerTurn: 50_000, warmupMs: 800, measureMs: 3000, rounds: 2, idleStreams: 3000 };
const QUICK: Sizes = { sessions: 4, tokensPerTurn: 20_000, warmupMs: 500, measureMs: 1500, rounds: 1, idleStreams: 1000 };

const INPUT = JSON.stringify({ type: "input", text: "1 + 2" });
const wsPath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/ws?token=${s.token}`;
const ssePath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/events?token=${s.token}`;

interface Streaming {
  transport: Transport;
  load: LoadResult;
  usPerToken: number;
  spread: number[];
}

async function measureStreaming(transport: Transport, sizes: Sizes, nodeArgs?: string[]): Promise<Streaming> {
  const server = await startAgentwire({ tokensPerTurn: sizes.tokensPerTurn, nodeArgs });
  try {
    const sessions = await createSessions(HOST, server.port, sizes.sessions);
    const window = { host: HOST, port: server.port, serverPid: server.pid, warmupMs: sizes.warmupMs, measureMs: sizes.measureMs };
    const load = await forkTokenLoad(
      transport === "ws" ? { ...window, links: sessions.map(wsPath), startMessage: INPUT } : { ...window, transport: "sse", sessions, inputBody: INPUT },
    );
    const usPerToken = (load.serverCpuMs * 1000) / load.tokens;
    return { transport, load, usPerToken, spread: [usPerToken] };
  } finally {
    await server.stop();
  }
}

interface Idle {
  transport: Transport;
  beforeKb: number;
  sessionsKb: number;
  afterKb: number;
  count: number;
}

/** One idle stream per session on the given route; returns what closes them all. */
async function openIdle(transport: Transport, server: ChildServer, sessions: CreatedSession[]): Promise<() => void> {
  const links = transport === "ws" ? await openMany(HOST, server.port, sessions.map(wsPath)) : await openManySse(HOST, server.port, sessions.map(ssePath));
  return () => {
    for (const link of links) link.close();
  };
}

async function measureIdle(transport: Transport, count: number, ctx: BenchContext): Promise<Idle> {
  const server = await startAgentwire();
  let close = () => {};
  try {
    // First-use code and buffers count as "before": open and close a few streams first.
    (await openIdle(transport, server, await createSessions(HOST, server.port, 64)))();
    const beforeKb = await settledRssKb(server.pid);
    const sessions = await createSessions(HOST, server.port, count);
    const sessionsKb = await settledRssKb(server.pid);
    const started = performance.now();
    close = await openIdle(transport, server, sessions);
    ctx.log(`sse: ${count} idle ${LABEL[transport]} streams open in ${num((performance.now() - started) / 1000, 1)} s`);
    const afterKb = await settledRssKb(server.pid);
    return { transport, beforeKb, sessionsKb, afterKb, count };
  } finally {
    close();
    await server.stop();
  }
}

const perStream = (r: Idle) => (r.afterKb - r.sessionsKb) / r.count;

function streamingTable(results: Streaming[], sizes: Sizes): Table {
  const cores = availableParallelism();
  const ws = results.find((r) => r.transport === "ws");
  const col = (f: (r: Streaming) => string) => results.map(f);
  const perSec = (r: Streaming, n: number) => (n * 1000) / r.load.elapsedMs;
  return {
    title:
      `agentwire SSE vs WebSocket: ${sizes.sessions} sessions streaming ${num(sizes.tokensPerTurn)}-token turns back to back, ` +
      `${num(sizes.measureMs / 1000, 1)} s window, best of ${sizes.rounds} round${sizes.rounds > 1 ? "s" : ""}`,
    columns: ["", ...col((r) => LABEL[r.transport])],
    rows: [
      ["server CPU per token event (us)", ...col((r) => num(r.usPerToken, 3))],
      ["  vs WebSocket", ...col((r) => ratio(r.usPerToken, ws?.usPerToken))],
      ["  all rounds (us)", ...col((r) => r.spread.map((v) => num(v, 3)).join(" / "))],
      ["token events/s delivered", ...col((r) => num(perSec(r, r.load.tokens)))],
      ["  vs WebSocket", ...col((r) => ratio(perSec(r, r.load.tokens), ws ? perSec(ws, ws.load.tokens) : null))],
      ["token frames/s (events on the wire)", ...col((r) => num(perSec(r, r.load.tokenFrames)))],
      ["merged frames (from)", ...col((r) => percent(r.load.mergedFrames, r.load.tokenFrames, 1))],
      ["bytes per token on the wire", ...col((r) => num(r.load.bytes / r.load.tokens, 1))],
      ["MB/s received", ...col((r) => num(perSec(r, r.load.bytes) / 1e6, 1))],
      ["turns completed", ...col((r) => num(r.load.turns))],
      null,
      ...loadRows(col, cores),
    ],
  };
}

function idleTable(results: Idle[]): Table {
  const ws = results.find((r) => r.transport === "ws");
  const col = (f: (r: Idle) => string) => results.map(f);
  const mb = (kb: number) => num(kb / 1024, 1);
  return {
    title: `agentwire idle streams: ${num(results[0]?.count)} sessions, one idle stream each`,
    columns: ["", ...col((r) => LABEL[r.transport])],
    rows: [
      ["RSS before (MB)", ...col((r) => mb(r.beforeKb))],
      ["RSS with sessions, unattached (MB)", ...col((r) => mb(r.sessionsKb))],
      ["RSS with sessions + idle streams (MB)", ...col((r) => mb(r.afterKb))],
      null,
      ["KB per idle stream (session excluded)", ...col((r) => num(perStream(r), 2))],
      ["  vs WebSocket", ...col((r) => ratio(perStream(r), ws ? perStream(ws) : null))],
      ["KB per session, unattached", ...col((r) => num((r.sessionsKb - r.beforeKb) / r.count, 2))],
    ],
  };
}

export const sseStreams: BenchSection = {
  id: "sse",
  title: "SSE vs WebSocket",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const notes: string[] = [
      "Same agentwire configuration and load shape on both routes; the SSE client starts each turn with a POST, the WebSocket client with a frame.",
      "Both clients run in one separate process on raw sockets; the SSE one undoes chunked coding and reads only id: and data: lines.",
    ];
    const best = new Map<Transport, Streaming>();
    for (let round = 1; round <= sizes.rounds; round++) {
      for (const transport of TRANSPORTS) {
        ctx.log(`sse: round ${round}/${sizes.rounds}: ${LABEL[transport]}: ${sizes.sessions} sessions x ${sizes.tokensPerTurn} tokens`);
        const m = await measureStreaming(transport, sizes);
        if (m.load.errors > 0) notes.push(`${LABEL[transport]}, round ${round}: ${m.load.errors} errors; first: ${m.load.firstError}`);
        const prev = best.get(transport);
        const spread = [...(prev?.spread ?? []), m.usPerToken];
        best.set(transport, prev && prev.usPerToken <= m.usPerToken ? { ...prev, spread } : { ...m, spread });
      }
    }
    const streaming = TRANSPORTS.map((t) => best.get(t) as Streaming);
    for (const r of streaming) {
      const limit = limitOf(r.load);
      if (limit !== "server CPU") notes.push(`${LABEL[r.transport]}: limited by ${limit}, not the server; CPU per event still holds, events/s is a floor.`);
    }
    const idle: Idle[] = [];
    for (const transport of TRANSPORTS) {
      ctx.log(`sse: ${sizes.idleStreams} idle ${LABEL[transport]} streams`);
      idle.push(await measureIdle(transport, sizes.idleStreams, ctx));
    }
    notes.push("Idle RSS is VmRSS read once it stops moving; an idle SSE stream also holds a heartbeat timer, an idle WebSocket relies on uWS pings.");
    const tables = [streamingTable(streaming, sizes), idleTable(idle)];
    if (ctx.profile) {
      ctx.log("sse: profiling agentwire's SSE route under --cpu-prof");
      const profiled = await profileAgentwire(ctx, (nodeArgs) => measureStreaming("sse", sizes, nodeArgs));
      tables.push(...profiled.map((t) => ({ ...t, title: t.title.replace("agentwire under", "agentwire streaming SSE under") })));
    }
    const [ws, sse] = streaming;
    const value = ws && sse ? sse.usPerToken / ws.usPerToken : null;
    return {
      tables,
      notes,
      targets: [
        {
          label: `SSE CPU per event <= ${SSE_CPU_RATIO_TARGET}x WebSocket`,
          measured: value === null ? "-" : `${value.toFixed(2)}x`,
          met: value === null || !Number.isFinite(value) ? null : value <= SSE_CPU_RATIO_TARGET,
        },
      ],
    };
  },
};
