// The stalled-readers section's runs: one server each, turns streamed at links that stop reading, and
// RSS, /metrics gauges and kernel queues sampled until the server lets the links go.
import { Agent, request } from "node:http";
import { type ChildServer, rssKb, settledRssKb } from "./proc.js";
import type { BenchContext } from "./section.js";
import { HOST, startAgentwire } from "./servers/index.js";
import { type CreatedSession, createSessions } from "./servers/agentwire-sessions.js";
import { LABEL, type Link, type Probe, type Transport, kernelSendMaxBytes, openLinks, openProbe, outcomeOf, readTcp, ssePath, wsPath } from "./stalled-links-client.js";
import { num } from "./table.js";

export interface Sizes {
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

export const FULL: Sizes = { links: 100, sessions: 4, windowMs: 60_000, resumeMs: 20_000 };
export const QUICK: Sizes = { links: 40, sessions: 4, windowMs: 20_000, resumeMs: 10_000 };

const SAMPLE_MS = 100;
/** /proc/net/tcp and /metrics are read every this many RSS samples. */
const SOCKET_EVERY = 2;
const INPUT = JSON.stringify({ type: "input", text: "go" });

/** The server's outbox hard cap as the bench's environment sets it (the server reads the same variable). */
export function hardCapBytes(): number {
  const raw = Number(process.env.AGENTWIRE_OUTBOX_HARD_BYTES);
  return Number.isSafeInteger(raw) && raw > 0 ? raw : 1024 * 1024;
}

/**
 * Reply length that must overflow the cap of a reader that never reads: first the kernel takes a
 * send buffer's worth of token frames (about 50 bytes each), then the outbox merges tokens and
 * counts their text (about 5.5 characters each) towards the cap. A quarter more for margin.
 */
export function replyWords(hardBytes: number): number {
  const kernelTokens = (kernelSendMaxBytes() + 256 * 1024) / 50;
  const mergedTokens = hardBytes / 5.5;
  return Math.min(1_000_000, Math.ceil((1.25 * (kernelTokens + mergedTokens)) / 1000) * 1000);
}

// ---------------------------------------------------------------- the server, from outside

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

/** Reads the gauges into `use`, one read in flight at a time: a server busy streaming gets no queue of /metrics requests. */
function gaugePoller(port: number, agent: Agent, use: (g: Gauges) => void): () => void {
  let polling = false;
  return () => {
    if (polling) return;
    polling = true;
    void gauges(port, agent)
      .then(use)
      .catch(() => {})
      .finally(() => {
        polling = false;
      });
  };
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

interface Sample {
  atMs: number;
  rssKb: number;
  seq: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- the runs

/** RSS over one turn per session with no client attached: what the turns themselves leave in their sessions. */
export interface TurnAlone {
  baselineKb: number;
  samples: Sample[];
  settledKb: number;
}

export interface Stalled {
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

export async function measureTurnAlone(words: number, sizes: Sizes, ctx: BenchContext): Promise<TurnAlone> {
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
    const turns = startTurns(server.port, agent, sessions);
    const poll = gaugePoller(server.port, agent, (g) => {
      if (g.runningTurns === 0) running = false;
    });
    const samples = await sampleUntil(server.pid, probe, t0, () => !running || performance.now() - t0 > sizes.windowMs, poll);
    await turns;
    const settledKb = await settledRssKb(server.pid, 4000);
    return { baselineKb, samples, settledKb };
  } finally {
    probe?.link.socket.destroy();
    agent.destroy();
    await server.stop();
  }
}

export async function measureStalled(transport: Transport, words: number, sizes: Sizes, ctx: BenchContext): Promise<Stalled> {
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
    const pollGauges = gaugePoller(server.port, agent, (g) => {
      runningTurns = g.runningTurns;
      const dropped = heldAtStart - held(g);
      const at = performance.now() - t0;
      while (droppedAfterMs.length < dropped) droppedAfterMs.push(at);
    });
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
      pollGauges();
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
