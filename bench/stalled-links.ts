// Section: what a reader that stops reading costs the server: RSS per stalled WebSocket and SSE
// stream while a long turn streams at it, and when and how the server lets the link go.
import type { BenchContext, BenchSection, SectionReport, Target } from "./section.js";
import { LABEL, type Link, type Transport, kernelSendMaxBytes, outcomeOf } from "./stalled-links-client.js";
import { FULL, QUICK, type Sizes, type Stalled, type TurnAlone, hardCapBytes, measureStalled, measureTurnAlone, replyWords } from "./stalled-links-run.js";
import { spread } from "./stats.js";
import { num, type Table } from "./table.js";

/** A stalled link may cost the server at most the outbox hard cap plus this much RSS. */
export const STALLED_SLACK_KB = 16;

const TRANSPORTS: readonly Transport[] = ["ws", "sse"];

// ---------------------------------------------------------------- figures

/** Counts of what the readers saw last, e.g. `4000 x38, 1006 x2`. */
function outcomeCell(transport: Transport, links: readonly Link[]): string {
  const counts = new Map<string, number>();
  for (const link of links) {
    const o = link.outcome ?? outcomeOf(link);
    const label =
      o.kind === "code"
        ? transport === "ws"
          ? String(o.code)
          : `${o.code} comment`
        : o.kind === "fin"
          ? transport === "ws"
            ? "1006 (no close frame)"
            : link.bodyEnded
              ? "end, no comment"
              : "FIN, no comment"
          : o.kind === "reset"
            ? "reset"
            : "still open";
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label} x${n}`)
    .join(", ");
}

/**
 * RSS the turn alone had added by the time it reached `seq`: the running maximum of its own run,
 * interpolated between samples (RSS rarely gives memory back within one turn).
 */
function turnAloneAt(alone: TurnAlone, seq: number): number {
  let envelope = 0;
  let prev: { seq: number; kb: number } = { seq: 0, kb: 0 };
  for (const s of alone.samples) {
    envelope = Math.max(envelope, s.rssKb - alone.baselineKb);
    const point = { seq: s.seq, kb: envelope };
    if (point.seq >= seq) {
      if (point.seq === prev.seq) return point.kb;
      return prev.kb + ((point.kb - prev.kb) * (seq - prev.seq)) / (point.seq - prev.seq);
    }
    prev = point;
  }
  return Math.max(envelope, alone.settledKb - alone.baselineKb);
}

interface PerLink {
  /** Largest (growth while stalled - growth of the turn alone at the same progress) / N. */
  peakKb: number;
  settledKb: number;
  /** (peak RSS - baseline RSS) / N, the turn's own memory included. */
  rawPeakKb: number;
}

function perLink(r: Stalled, alone: TurnAlone): PerLink {
  const n = r.links.length;
  let peak = Number.NEGATIVE_INFINITY;
  for (const s of r.samples) peak = Math.max(peak, (s.rssKb - r.baselineKb - turnAloneAt(alone, s.seq)) / n);
  const settled = (r.settledKb - r.baselineKb - (alone.settledKb - alone.baselineKb)) / n;
  return { peakKb: peak, settledKb: settled, rawPeakKb: (r.peakKb - r.baselineKb) / n };
}

const seconds = (ms: readonly number[]) => {
  if (ms.length === 0) return "-";
  const s = spread(ms);
  return `${num(s.p50 / 1000, 1)} / ${num(s.max / 1000, 1)}`;
};

function closedCell(r: Stalled): string {
  const closed = r.links.flatMap((l) => (l.tcpClosedAfterMs === null ? [] : [l.tcpClosedAfterMs]));
  const open = r.links.length - closed.length;
  return open > 0 ? `${seconds(closed)} (${open} not within ${num(r.windowMs / 1000)} s)` : seconds(closed);
}

function mainTable(results: Stalled[], alone: TurnAlone, hardKb: number, sizes: Sizes): Table {
  return {
    title: `Stalled readers: N links on ${sizes.sessions} sessions stop reading while a turn streams at each session (outbox hard cap ${num(hardKb)} KB)`,
    columns: ["transport", "N", "RSS/link peak (KB)", "settled (KB)", "hard cap (KB)", "dropped p50 / max (s)", "socket closed p50 / max (s)", "close seen by client"],
    rows: results.map((r) => {
      const p = perLink(r, alone);
      const dropped = r.droppedAfterMs.length < r.links.length ? ` (${r.links.length - r.droppedAfterMs.length} kept)` : "";
      return [LABEL[r.transport], num(r.links.length), num(p.peakKb), num(p.settledKb), num(hardKb), seconds(r.droppedAfterMs) + dropped, closedCell(r), outcomeCell(r.transport, r.links)];
    }),
  };
}

function detailTable(results: Stalled[], alone: TurnAlone): Table {
  const col = (f: (r: Stalled) => string) => results.map(f);
  const mb = (kb: number) => num(kb / 1024, 1);
  const n = (r: Stalled) => r.links.length;
  const aloneSettled = alone.settledKb - alone.baselineKb;
  const alonePeak = Math.max(...alone.samples.map((s) => s.rssKb), alone.settledKb) - alone.baselineKb;
  return {
    title: "Stalled readers: how the figures are made",
    columns: ["", ...col((r) => LABEL[r.transport])],
    rows: [
      ["reply tokens per turn (probe's last seq)", ...col((r) => num(r.replyTokens))],
      ["RSS baseline: sessions + reading links (MB)", ...col((r) => mb(r.baselineKb))],
      ["RSS peak while stalled (MB)", ...col((r) => mb(r.peakKb))],
      ["RSS settled, turns over (MB)", ...col((r) => mb(r.settledKb))],
      ["(peak - baseline) / N, turns included (KB)", ...col((r) => num(perLink(r, alone).rawPeakKb))],
      ["RSS growth of the turns alone, peak / settled (MB)", ...col(() => `${mb(alonePeak)} / ${mb(aloneSettled)}`)],
      null,
      ["kernel queues per link at most (KB, not in RSS)", ...col((r) => num(r.links.reduce((s, l) => s + l.kernelPeak, 0) / n(r) / 1024))],
      ["links dropped by the server (/metrics gauge)", ...col((r) => `${num(r.droppedAfterMs.length)} of ${num(n(r))}`)],
      ["server sockets closed (left ESTABLISHED)", ...col((r) => `${num(r.links.filter((l) => l.tcpClosedAfterMs !== null).length)} of ${num(n(r))}`)],
      ["read after resuming, per link (KB)", ...col((r) => num(r.links.reduce((s, l) => s + l.bytesAfterResume, 0) / n(r) / 1024))],
    ],
  };
}

export const stalledLinks: BenchSection = {
  id: "stalled",
  title: "Stalled readers",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const hardBytes = hardCapBytes();
    const hardKb = hardBytes / 1024;
    const words = replyWords(hardBytes);
    const timeout = process.env.AGENTWIRE_SLOW_READER_TIMEOUT_MS;
    const alone = await measureTurnAlone(words, sizes, ctx);
    const results: Stalled[] = [];
    for (const transport of TRANSPORTS) results.push(await measureStalled(transport, words, sizes, ctx));
    const notes = [
      "Every link is a raw socket that reads live until the baseline is taken, then stops reading (socket.pause()) just before the turns start. Times run from " +
        "that moment: \"dropped\" until the server's /metrics gauge no longer counts the link (its outbox is gone), \"socket closed\" until the server-side " +
        "socket leaves ESTABLISHED in /proc/net/tcp (FIN queued or socket closed).",
      `The links share ${sizes.sessions} sessions: a turn keeps its text in its session's turn record and log (MBs for these turns, as much as a stalled link may cost), ` +
        "so one session per link would mostly measure the turns. RSS per link also subtracts what the same turns cost with no reader (a separate server, same sizes), " +
        "compared at equal progress: one more session with a live WebSocket reports how far the turns have got.",
      `Node's net sockets cannot set SO_RCVBUF: the kernel keeps up to a send buffer (tcp_wmem max ${num(kernelSendMaxBytes() / 1024)} KB) on the server side ` +
        "and a small receive buffer on the client side per link. That memory is the kernel's, not the server's RSS; the kernel-queue row shows how much it held.",
      timeout === undefined || timeout === ""
        ? "AGENTWIRE_SLOW_READER_TIMEOUT_MS was not set: the server runs with its default."
        : `AGENTWIRE_SLOW_READER_TIMEOUT_MS=${timeout} was passed to the server.`,
      `The stall window is ${num(sizes.windowMs / 1000)} s; after it the readers resume for up to ${num(sizes.resumeMs / 1000)} s to see what the server left them.`,
      `Each turn streams ${num(words)} words (AGENTWIRE_TURN_MAX_OUTPUT_CHARS=${process.env.AGENTWIRE_TURN_MAX_OUTPUT_CHARS || num(words * 8).replace(/,/g, "")}): ` +
        "enough to fill a stalled link's kernel buffers and then the hard cap. The turns and every link share the server's one thread, so the time to reach the cap grows with N.",
      "Settled is RSS once it stops moving after the turns ended; freed heap that V8 has not handed back yet still counts there.",
    ];
    for (const r of results) if (r.gaveUp) notes.push(`${LABEL[r.transport]}: the server still held some links when the window ran out.`);
    const targets: Target[] = results.map((r) => {
      const p = perLink(r, alone);
      const limit = hardKb + STALLED_SLACK_KB;
      return {
        label: `RSS per stalled ${LABEL[r.transport] === "SSE" ? "SSE stream" : "WebSocket"} <= hard cap + ${STALLED_SLACK_KB} KB`,
        measured: Number.isFinite(p.peakKb) ? `${num(p.peakKb)} KB (limit ${num(limit)} KB)` : "-",
        met: Number.isFinite(p.peakKb) ? p.peakKb <= limit : null,
      };
    });
    return { tables: [mainTable(results, alone, hardKb, sizes), detailTable(results, alone)], notes, targets };
  },
};
