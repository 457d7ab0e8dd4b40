// Section: what a reader that stops reading costs the server: RSS per stalled WebSocket and SSE
// stream while a long turn streams at it, and when and how the server lets the link go.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { type Socket, connect } from "node:net";
import { type ChildServer, rssKb, settledRssKb } from "./proc.js";
import type { BenchContext, BenchSection, SectionReport, Target } from "./section.js";
import { HOST, startAgentwire } from "./servers/index.js";
import { type CreatedSession, createSessions } from "./servers/agentwire-sessions.js";
import { spread } from "./stats.js";
import { num, type Table } from "./table.js";
import { FrameParser, OP_CLOSE, OP_TEXT } from "./ws-frames.js";

/** A stalled link may cost the server at most the outbox hard cap plus this much RSS. */
export const STALLED_SLACK_KB = 16;

type Transport = "ws" | "sse";
const LABEL: Record<Transport, string> = { ws: "WebSocket", sse: "SSE" };
const TRANSPORTS: readonly Transport[] = ["ws", "sse"];

interface Sizes {
  links: number;
  /**
   * Sessions the links share, each running one turn. A turn keeps its text in its session (MBs for
   * these turns, as much as a stalled link may cost): with one session per link the growth would be
   * mostly the turns'. With a few, it is a small part, and it is subtracted as well.
   */
  sessions: number;
  /** How long stalled links are watched before the bench gives up on the server closing them. */
  windowMs: number;
  /** How long resumed links may take to read what was left for them. */
  resumeMs: number;
}

const FULL: Sizes = { links: 100, sessions: 4, windowMs: 60_000, resumeMs: 20_000 };
const QUICK: Sizes = { links: 40, sessions: 4, windowMs: 20_000, resumeMs: 10_000 };

const SAMPLE_MS = 100;
/** /proc/net/tcp and /metrics are read every this many RSS samples. */
const SOCKET_EVERY = 2;
const INPUT = JSON.stringify({ type: "input", text: "go" });

/** The server's outbox hard cap as the bench's environment sets it (the server reads the same variable). */
function hardCapBytes(): number {
  const raw = Number(process.env.AGENTWIRE_OUTBOX_HARD_BYTES);
  return Number.isSafeInteger(raw) && raw > 0 ? raw : 1024 * 1024;
}

/** The largest send buffer the kernel lets a TCP socket grow to (tcp_wmem max). */
function kernelSendMaxBytes(): number {
  try {
    const max = Number(readFileSync("/proc/sys/net/ipv4/tcp_wmem", "utf8").trim().split(/\s+/)[2]);
    return Number.isFinite(max) && max > 0 ? max : 4 * 1024 * 1024;
  } catch {
    return 4 * 1024 * 1024;
  }
}

/**
 * Reply length that must overflow the cap of a reader that never reads: first the kernel takes a
 * send buffer's worth of token frames (about 50 bytes each), then the outbox merges tokens and
 * counts their text (about 5.5 characters each) towards the cap. A quarter more for margin.
 */
function replyWords(hardBytes: number): number {
  const kernelTokens = (kernelSendMaxBytes() + 256 * 1024) / 50;
  const mergedTokens = hardBytes / 5.5;
  return Math.min(1_000_000, Math.ceil((1.25 * (kernelTokens + mergedTokens)) / 1000) * 1000);
}

const wsPath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/ws?token=${s.token}`;
const ssePath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/events?token=${s.token}`;

// ---------------------------------------------------------------- raw links

/** How a link ended, as its reader saw it once it read again. */
type Outcome = { kind: "code"; code: number } | { kind: "fin" } | { kind: "reset" } | { kind: "open" };

/** One client link on a raw socket: reads until its socket is paused, and what was left for it once resumed. */
interface Link {
  transport: Transport;
  socket: Socket;
  localPort: number;
  closed: boolean;
  reset: boolean;
  /** WebSocket: the code of a close frame read; SSE: the code of a `: close <code> <reason>` comment. */
  closeCode: number | null;
  /** SSE: the chunked body's terminating chunk was read (the server ended the response). */
  bodyEnded: boolean;
  bytesAfterResume: number;
  resumed: boolean;
  /** Largest server send queue + client receive queue seen in the kernel, in bytes. */
  kernelPeak: number;
  /** When the server-side socket left ESTABLISHED (FIN or close), as ms after the stall. */
  tcpClosedAfterMs: number | null;
  /** What the reader had seen when the bench stopped reading it. */
  outcome: Outcome | null;
}

function newLink(transport: Transport, socket: Socket): Link {
  return {
    transport,
    socket,
    localPort: 0,
    closed: false,
    reset: false,
    closeCode: null,
    bodyEnded: false,
    bytesAfterResume: 0,
    resumed: false,
    kernelPeak: 0,
    tcpClosedAfterMs: null,
    outcome: null,
  };
}

const HEADER_END = Buffer.from("\r\n\r\n");
const CLOSE_COMMENT = /: close (\d+) [^\n]*\n/g;
const LAST_CHUNK = "\r\n0\r\n\r\n";

/**
 * Opens a raw link and resolves once the server answered 101 (WebSocket) or 200 (SSE). Close frames
 * and close comments are looked for in everything read, so what a reader sees last is known.
 */
function openLink(transport: Transport, port: number, path: string, onText?: (buf: Buffer, start: number, end: number) => void): Promise<Link> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port, noDelay: true });
    const link = newLink(transport, socket);
    let head: Buffer | null = Buffer.alloc(0);
    let body: (chunk: Buffer) => void;
    if (transport === "ws") {
      const parser = new FrameParser((buf, start, end, opcode) => {
        if (opcode === OP_CLOSE) link.closeCode = end - start >= 2 ? buf.readUInt16BE(start) : 1005;
        else if (opcode === OP_TEXT) onText?.(buf, start, end);
      });
      body = (chunk) => parser.push(chunk);
    } else {
      // Only the tail matters: the close comment is the last event, followed by the last chunk.
      let tail = "";
      body = (chunk) => {
        tail = (tail + chunk.toString("latin1", Math.max(0, chunk.length - 512))).slice(-512);
        for (const match of tail.matchAll(CLOSE_COMMENT)) link.closeCode = Number(match[1]);
        if (tail.endsWith(LAST_CHUNK)) link.bodyEnded = true;
      };
    }
    socket.once("connect", () => {
      link.localPort = socket.localPort ?? 0;
      socket.write(
        transport === "ws"
          ? `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
              `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`
          : `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nAccept: text/event-stream\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: Buffer) => {
      if (link.resumed) link.bytesAfterResume += chunk.length;
      if (head === null) {
        body(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(HEADER_END);
      if (end < 0) return;
      const status = head.toString("latin1", 0, head.indexOf("\r\n"));
      const rest = head.subarray(end + 4);
      head = null;
      if (!status.startsWith(transport === "ws" ? "HTTP/1.1 101" : "HTTP/1.1 200")) {
        reject(new Error(`${LABEL[transport]} refused: ${status}`));
        socket.destroy();
        return;
      }
      resolve(link);
      if (rest.length > 0) body(rest);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET") link.reset = true;
      if (head !== null) reject(err);
      socket.destroy();
    });
    socket.on("close", () => {
      link.closed = true;
      if (head !== null) reject(new Error(`${LABEL[transport]} closed before its answer`));
    });
  });
}

async function openLinks(transport: Transport, port: number, paths: readonly string[], concurrency = 32): Promise<Link[]> {
  const links: Link[] = [];
  let next = 0;
  const worker = async () => {
    while (next < paths.length) links.push(await openLink(transport, port, paths[next++] as string));
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  } catch (err) {
    for (const link of links) link.socket.destroy();
    throw err;
  }
  return links;
}

function outcomeOf(link: Link): Outcome {
  if (link.closeCode !== null) return { kind: "code", code: link.closeCode };
  if (link.reset) return { kind: "reset" };
  if (link.closed || link.bodyEnded) return { kind: "fin" };
  return { kind: "open" };
}

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

// ---------------------------------------------------------------- the server, from outside

/** The kernel's view of the links to `serverPort` (IPv4 loopback), keyed by the client's port. */
interface TcpView {
  /** Server-side socket state (hex, "01" = ESTABLISHED), or undefined once it is gone. */
  serverState: string | undefined;
  serverTx: number;
  clientRx: number;
}

function readTcp(serverPort: number): Map<number, TcpView> | null {
  let text: string;
  try {
    text = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return null;
  }
  const out = new Map<number, TcpView>();
  const view = (port: number) => {
    let v = out.get(port);
    if (!v) out.set(port, (v = { serverState: undefined, serverTx: 0, clientRx: 0 }));
    return v;
  };
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !f[1]?.includes(":")) continue;
    const local = parseInt((f[1] as string).split(":")[1] ?? "", 16);
    const remote = parseInt((f[2] as string).split(":")[1] ?? "", 16);
    const [tx, rx] = (f[4] as string).split(":").map((h) => parseInt(h, 16)) as [number, number];
    if (local === serverPort && remote !== 0) {
      const v = view(remote);
      v.serverState = f[3];
      v.serverTx = tx;
    } else if (remote === serverPort) {
      view(local).clientRx = rx;
    }
  }
  return out;
}

function httpText(port: number, agent: Agent, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    const req = request({ host: HOST, port, agent, method, path, headers, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

interface Gauges {
  websockets: number;
  sseStreams: number;
  runningTurns: number;
}

async function gauges(port: number, agent: Agent): Promise<Gauges> {
  const { text } = await httpText(port, agent, "GET", "/metrics");
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { websockets: read("agentwire_websockets"), sseStreams: read("agentwire_sse_streams"), runningTurns: read("agentwire_running_turns") };
}

/** Starts one turn per session, a few POSTs at a time; resolves once every turn has been accepted. */
async function startTurns(port: number, agent: Agent, sessions: readonly CreatedSession[], concurrency = 16): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < sessions.length) {
      const s = sessions[next++] as CreatedSession;
      const { status, text } = await httpText(port, agent, "POST", `/v1/sessions/${s.sessionId}/messages?token=${s.token}`, INPUT);
      if (status !== 202) throw new Error(`POST messages answered ${status}: ${text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sessions.length) }, worker));
}

/**
 * A live WebSocket on one more session, whose turn runs alongside the others: the seq it reads tells
 * how far every turn has got (the demo agent takes turns in equal slices), so RSS can be compared at
 * equal progress.
 */
interface Probe {
  link: Link;
  seq(): number;
}

const SEQ_KEY = Buffer.from('"seq":');

async function openProbe(port: number, session: CreatedSession): Promise<Probe> {
  let seq = 0;
  const link = await openLink("ws", port, wsPath(session), (buf, start, end) => {
    const at = buf.indexOf(SEQ_KEY, start);
    if (at < 0 || at > start + 40 || at >= end) return;
    let value = 0;
    for (let i = at + SEQ_KEY.length; i < end; i++) {
      const digit = (buf[i] as number) - 0x30;
      if (digit < 0 || digit > 9) break;
      value = value * 10 + digit;
    }
    if (value > seq) seq = value;
  });
  return { link, seq: () => seq };
}

interface Sample {
  atMs: number;
  rssKb: number;
  seq: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- the runs

/** RSS over one turn per session with no client attached: what the turns themselves leave in their sessions. */
interface TurnAlone {
  baselineKb: number;
  samples: Sample[];
  settledKb: number;
}

interface Stalled {
  transport: Transport;
  links: Link[];
  /** The sessions with their links, all reading. */
  baselineKb: number;
  samples: Sample[];
  peakKb: number;
  settledKb: number;
  /** Times (ms after the stall) at which the server's gauge showed links dropped; one entry per link. */
  droppedAfterMs: number[];
  /** The stall window ran out with links the server still held. */
  gaveUp: boolean;
  windowMs: number;
  replyTokens: number;
}

/**
 * Every server of this section: the demo agent at full speed with a reply long enough to overflow
 * the cap, and a turn output limit that lets the whole reply through (unless the environment sets one).
 */
function startServer(words: number): Promise<ChildServer> {
  const env: Record<string, string> = { AGENTWIRE_DEMO_REPLY_WORDS: String(words) };
  if (!process.env.AGENTWIRE_TURN_MAX_OUTPUT_CHARS) env.AGENTWIRE_TURN_MAX_OUTPUT_CHARS = String(words * 8);
  return startAgentwire({ env });
}

/** First-use code and buffers count as "before": one stalled link (or none) through a whole turn. */
async function warmUp(server: ChildServer, agent: Agent, transport: Transport | null, timeoutMs: number): Promise<void> {
  const sessions = await createSessions(HOST, server.port, 2);
  const links = transport ? await openLinks(transport, server.port, sessions.map(transport === "ws" ? wsPath : ssePath)) : [];
  for (const link of links) link.socket.pause();
  await startTurns(server.port, agent, sessions);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await sleep(200);
    const g = await gauges(server.port, agent);
    if (g.runningTurns === 0 && g.websockets === 0 && g.sseStreams === 0) break;
    // Links the server let go (or never closes) are not needed past their turn.
    if (g.runningTurns === 0) for (const link of links) link.socket.destroy();
  }
  for (const link of links) link.socket.destroy();
}

/** Samples RSS (and the probe's progress) until `done` says stop; `each` runs on every SOCKET_EVERY-th sample. */
async function sampleUntil(pid: number, probe: Probe, t0: number, done: () => boolean, each?: () => void): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; !done(); i++) {
    let kb: number;
    try {
      kb = rssKb(pid);
    } catch {
      throw new Error(`agentwire (pid ${pid}) exited during the stalled-reader run`);
    }
    samples.push({ atMs: performance.now() - t0, rssKb: kb, seq: probe.seq() });
    if (each && i % SOCKET_EVERY === 0) each();
    await sleep(SAMPLE_MS);
  }
  return samples;
}

async function measureTurnAlone(words: number, sizes: Sizes, ctx: BenchContext): Promise<TurnAlone> {
  const server = await startServer(words);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let probe: Probe | null = null;
  try {
    await warmUp(server, agent, null, sizes.windowMs);
    const sessions = await createSessions(HOST, server.port, sizes.sessions + 1);
    probe = await openProbe(server.port, sessions[sessions.length - 1] as CreatedSession);
    const baselineKb = await settledRssKb(server.pid, 4000);
    ctx.log(`stalled: the turns alone: ${sizes.sessions} sessions x ${num(words)} words, no reader`);
    const t0 = performance.now();
    let running = true;
    let polling = false;
    const turns = startTurns(server.port, agent, sessions);
    const samples = await sampleUntil(
      server.pid,
      probe,
      t0,
      () => !running || performance.now() - t0 > sizes.windowMs,
      () => {
        if (polling) return;
        polling = true;
        void gauges(server.port, agent)
          .then((g) => {
            if (g.runningTurns === 0) running = false;
          })
          .catch(() => {})
          .finally(() => {
            polling = false;
          });
      },
    );
    await turns;
    const settledKb = await settledRssKb(server.pid, 4000);
    return { baselineKb, samples, settledKb };
  } finally {
    probe?.link.socket.destroy();
    agent.destroy();
    await server.stop();
  }
}

async function measureStalled(transport: Transport, words: number, sizes: Sizes, ctx: BenchContext): Promise<Stalled> {
  const server = await startServer(words);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let links: Link[] = [];
  let probe: Probe | null = null;
  try {
    await warmUp(server, agent, transport, sizes.windowMs);
    const sessions = await createSessions(HOST, server.port, sizes.sessions + 1);
    const probeSession = sessions[sessions.length - 1] as CreatedSession;
    const linked = sessions.slice(0, -1);
    const path = transport === "ws" ? wsPath : ssePath;
    links = await openLinks(transport, server.port, Array.from({ length: sizes.links }, (_, i) => path(linked[i % linked.length] as CreatedSession)));
    probe = await openProbe(server.port, probeSession);
    // The links read live until now: the baseline holds the sessions with their links, all reading.
    const baselineKb = await settledRssKb(server.pid, 4000);
    const held = (g: Gauges) => (transport === "ws" ? g.websockets - 1 : g.sseStreams);
    const heldAtStart = held(await gauges(server.port, agent));
    ctx.log(`stalled: ${sizes.links} ${LABEL[transport]} links on ${sizes.sessions} sessions stop reading; a ${num(words)}-word turn starts in each session`);
    for (const link of links) link.socket.pause();
    const t0 = performance.now();
    const turns = startTurns(server.port, agent, sessions);
    const droppedAfterMs: number[] = [];
    let runningTurns = Number.POSITIVE_INFINITY;
    let polling = false;
    const poll = () => {
      const now = performance.now() - t0;
      const tcp = readTcp(server.port);
      if (tcp) {
        for (const link of links) {
          const v = tcp.get(link.localPort);
          if (v) link.kernelPeak = Math.max(link.kernelPeak, v.serverTx + v.clientRx);
          if (link.tcpClosedAfterMs === null && (v === undefined || v.serverState !== "01")) link.tcpClosedAfterMs = now;
        }
      }
      if (polling) return;
      polling = true;
      void gauges(server.port, agent)
        .then((g) => {
          runningTurns = g.runningTurns;
          const dropped = heldAtStart - held(g);
          const at = performance.now() - t0;
          while (droppedAfterMs.length < dropped) droppedAfterMs.push(at);
        })
        .catch(() => {})
        .finally(() => {
          polling = false;
        });
    };
    const allClosed = () => links.every((l) => l.tcpClosedAfterMs !== null);
    const samples = await sampleUntil(server.pid, probe, t0, () => (allClosed() && runningTurns === 0) || performance.now() - t0 > sizes.windowMs, poll);
    await turns;
    const gaveUp = !allClosed();
    const peakKb = Math.max(...samples.map((s) => s.rssKb));
    // Still stalled: links the server did not close hold what they held.
    const settledKb = await settledRssKb(server.pid, 4000);
    ctx.log(`stalled: ${LABEL[transport]}: resuming the readers`);
    for (const link of links) {
      link.resumed = true;
      link.socket.resume();
    }
    const resumeDeadline = performance.now() + sizes.resumeMs;
    while (performance.now() < resumeDeadline && !links.every((l) => l.closed)) {
      const before = links.reduce((n, l) => n + l.bytesAfterResume, 0);
      await sleep(500);
      // Links the server never closed stay open once read out: nothing more will come.
      if (links.reduce((n, l) => n + l.bytesAfterResume, 0) === before && links.every((l) => l.closed || l.bytesAfterResume > 0)) break;
    }
    for (const link of links) link.outcome = outcomeOf(link);
    return { transport, links, baselineKb, samples, peakKb, settledKb, droppedAfterMs, gaveUp, windowMs: sizes.windowMs, replyTokens: probe.seq() };
  } finally {
    for (const link of links) link.socket.destroy();
    probe?.link.socket.destroy();
    agent.destroy();
    await server.stop();
  }
}

// ---------------------------------------------------------------- figures

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
