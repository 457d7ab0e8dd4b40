// Section: server RSS per idle attached session, from VmRSS before and after opening thousands of idle links.
import type { BenchContext, BenchSection, SectionReport } from "./section.js";
import { type ServerKind, HOST, SERVER_KINDS } from "./servers/index.js";
import { heapBreakdown } from "./heap-breakdown.js";
import { settledRssKb } from "./proc.js";
import { openManySio } from "./raw-sio-client.js";
import { type RawWs, openMany as openManyWs } from "./raw-ws-client.js";
import { num, ratio, type Table } from "./table.js";

/** agentwire may hold at most this much RSS per idle attached session. */
export const KB_PER_SESSION_TARGET = 2;

/** Links opened and closed before the baseline reading, so first-use code and buffers count as "before". */
export const WARMUP_LINKS = 64;

export interface Measured {
  kind: ServerKind;
  beforeKb: number;
  /** After creating the sessions, before attaching (agentwire only). */
  sessionsKb: number | null;
  afterKb: number;
  /** After the first half (sessions and links); the second half's growth is the marginal cost. */
  midKb: number;
  count: number;
}

/** One run of `kind`: a fresh server, RSS before, with half the sessions and links, and with all of them. */
export async function measure(kind: ServerKind, count: number, ctx: BenchContext): Promise<Measured> {
  const server = await kind.start({ tokensPerTurn: 16 });
  let links: RawWs[] = [];
  const openMany = kind.framing === "socket.io" ? openManySio : openManyWs;
  try {
    const warm = await openMany(HOST, server.port, await kind.prepareLinks(server, WARMUP_LINKS));
    for (const link of warm) link.close();
    const beforeKb = await settledRssKb(server.pid);
    const half = Math.floor(count / 2);
    const started = performance.now();
    const first = await kind.prepareLinks(server, half);
    const sessionsKb = kind.id === "agentwire" ? await settledRssKb(server.pid) : null;
    links = await openMany(HOST, server.port, first);
    const midKb = await settledRssKb(server.pid);
    // The second half pays no one-time growth and finds no slack left from startup: its cost is marginal.
    links = links.concat(await openMany(HOST, server.port, await kind.prepareLinks(server, count - half)));
    ctx.log(`memory: ${kind.label}: ${count} links open in ${num((performance.now() - started) / 1000, 1)} s`);
    const afterKb = await settledRssKb(server.pid);
    return { kind, beforeKb, sessionsKb, afterKb, midKb, count };
  } finally {
    for (const link of links) link.close();
    await server.stop();
  }
}

export const perLink = (r: Measured) => (r.afterKb - r.beforeKb) / r.count;
export const half = (r: Measured) => Math.floor(r.count / 2);
/** One more session with its idle link, once the process has grown to hold thousands. */
export const marginal = (r: Measured) => (r.afterKb - r.midKb) / (r.count - half(r));

function table(results: Measured[], count: number): Table {
  const base = results.find((r) => r.kind.id === "uws");
  const col = (f: (r: Measured) => string) => results.map(f);
  const mb = (kb: number | null) => num(kb === null ? null : kb / 1024, 1);
  return {
    title: `Idle memory: ${num(count)} sessions with an idle WebSocket each (bare servers: ${num(count)} idle WebSockets)`,
    columns: ["", ...col((r) => r.kind.label)],
    rows: [
      ["RSS before (MB)", ...col((r) => mb(r.beforeKb))],
      ["RSS with sessions, unattached (MB)", ...col((r) => mb(r.sessionsKb))],
      ["RSS with sessions + idle links (MB)", ...col((r) => mb(r.afterKb))],
      null,
      ["KB per idle attached session", ...col((r) => num(perLink(r), 2))],
      ["  vs bare uWS", ...col((r) => ratio(perLink(r), base ? perLink(base) : null))],
      ["  first half: the session (KB)", ...col((r) => (r.sessionsKb === null ? "-" : num((r.sessionsKb - r.beforeKb) / half(r), 2)))],
      ["  first half: the WebSocket (KB)", ...col((r) => num((r.midKb - (r.sessionsKb ?? r.beforeKb)) / half(r), 2))],
      ["marginal KB, second half", ...col((r) => num(marginal(r), 2))],
      ["  vs bare uWS", ...col((r) => ratio(marginal(r), base ? marginal(base) : null))],
    ],
  };
}

export const idleMemory: BenchSection = {
  id: "memory",
  title: "Idle memory",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const count = ctx.quick ? 2000 : 10_000;
    const results: Measured[] = [];
    for (const kind of SERVER_KINDS) {
      ctx.log(`memory: ${kind.label}: ${count} idle links`);
      results.push(await measure(kind, count, ctx));
    }
    const aw = results.find((r) => r.kind.id === "agentwire");
    const kb = aw ? perLink(aw) : null;
    const kbMarginal = aw ? marginal(aw) : null;
    const target = (label: string, value: number | null) => ({
      label: `agentwire ${label} <= ${KB_PER_SESSION_TARGET} KB`,
      measured: value === null ? "-" : `${value.toFixed(2)} KB`,
      met: value === null ? null : value <= KB_PER_SESSION_TARGET,
    });
    const tables = [table(results, count)];
    if (ctx.profile) tables.push(await heapBreakdown(ctx, count));
    return {
      tables,
      notes: [
        "RSS is VmRSS of the server process from /proc/<pid>/status, read once it stops moving; it includes V8 heap slack that GC has not returned.",
        "Every server runs with agentwire's Node flags (young generation capped at 2 x 4 MB). The first half can reuse heap slack left from startup, which flatters it; the second half shows the marginal cost of one more session and link, so both are held to the target.",
      ],
      targets: [target("RSS per idle session", kb), target("marginal RSS per idle session", kbMarginal)],
    };
  },
};
