// Memory test: 100 stalled WebSockets and 100 stalled SSE streams each cost the server at most the outbox hard cap + 160 KB of RSS (its turn aside), and are closed with 4000 in time.
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { type Socket, connect } from "node:net";
import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { FakeProvider, type Handler, openai } from "../helpers/fake-provider.js";
import { MB, type ServerProc, type Session, startServerProc } from "../helpers/server-proc.js";
import { HeadReader, openingRequest } from "../../bench/raw-http.js";

const LINKS = 100;
const HARD_BYTES = MB;
/**
 * What a link may cost beyond the hard cap, measured from RSS peaks: the uWS socket buffer below the
 * soft limit, and the young generation's garbage (up to 12 MB at agentwire's Node flags, 120 KB per
 * link over 100 links) that a peak cannot tell from live memory. The bench (bench/stalled-links.ts)
 * measures the link itself against a control run; this test holds the whole process to the cap.
 */
const SLACK_BYTES = 160 * 1024;
const STALL_MS = 3000;
/**
 * A link is dropped by the hard cap as soon as the kernel's buffers are full, or STALL_MS after its
 * socket last took anything (checked every STALL_MS / 4). The margin covers the time the kernel takes
 * to stop taking, with one thread writing to 100 links.
 */
const CLOSE_MARGIN_MS = 5000;
/**
 * Upstream deltas of 1 KB: small enough that a lagging link's queue joins its merged text into
 * chunks of its own (every 256 deltas), so each link holds its own copy of what it has not read,
 * as it would with a real model's small deltas. Large enough that 200 links fill in seconds.
 */
const DELTA_CHARS = 1024;
/**
 * A stalled link on loopback absorbs about 4 MB in the kernel (the server's send buffer autotunes to
 * tcp_wmem max) before its outbox fills: the turn must be able to go well past 5 MB. It stops as soon
 * as every link is gone, so this is only the bound.
 */
const MAX_TURN_CHARS = 32 * MB;
const SAMPLE_MS = 100;
const TEST_MS = 60_000;
/** How long resumed readers may take to read what the server left them. */
const READ_MS = 10_000;
const CLOSE_COMMENT = ": close 4000 slow_consumer\n\n";

type Transport = "ws" | "sse";

interface Link {
  socket: Socket;
  /** Token frames (WebSocket) or token events (SSE) read after the stall. */
  tokens: number;
  bytesAfterResume: number;
  resumed: boolean;
  /** WebSocket: the close frame's code (1005 without one). SSE: the code of the last `: close` comment. */
  closeCode: number | null;
  /** WebSocket frames that came after the close frame (a protocol violation if any). */
  afterClose: number;
  /** SSE: the last characters of the body, to see what it ended with. */
  tail: string;
  /** SSE: the terminating chunk was read. */
  bodyEnded: boolean;
  /** The socket is closed, whichever side closed it. */
  closed: boolean;
  /** Resolves once it is. */
  gone: Promise<void>;
}

/** Opens a raw link and resolves once its welcome has been read; the link reads on until `socket.pause()`. */
function openLink(transport: Transport, port: number, s: Session): Promise<Link> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, noDelay: true });
    let closed!: () => void;
    const link: Link = {
      socket,
      tokens: 0,
      bytesAfterResume: 0,
      resumed: false,
      closeCode: null,
      afterClose: 0,
      tail: "",
      bodyEnded: false,
      closed: false,
      gone: new Promise<void>((r) => (closed = r)),
    };
    let welcomed = false;
    const welcome = () => {
      if (welcomed) return;
      welcomed = true;
      resolve(link);
    };
    const body = transport === "ws" ? wsReader(link, welcome) : sseReader(link, welcome);
    const head = new HeadReader();
    socket.once("connect", () => {
      const path = `/v1/sessions/${s.sessionId}/${transport === "ws" ? "ws" : "events"}?token=${s.token}`;
      socket.write(openingRequest(transport, "127.0.0.1", port, path));
    });
    socket.on("data", (chunk: Buffer) => {
      if (link.resumed) link.bytesAfterResume += chunk.length;
      if (head.done) {
        body(chunk);
        return;
      }
      const answer = head.push(chunk);
      if (!answer) return;
      const { text, rest } = answer;
      const ok = transport === "ws" ? text.startsWith("HTTP/1.1 101") : text.startsWith("HTTP/1.1 200") && /\r\ntransfer-encoding: chunked/i.test(text);
      if (!ok) {
        reject(new Error(`${transport} refused: ${text.split("\r\n")[0]}`));
        socket.destroy();
        return;
      }
      if (rest.length > 0) body(rest);
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      link.closed = true;
      closed();
      if (!welcomed) reject(new Error(`${transport} link closed before its welcome`));
    });
  });
}

/** Server frames (unmasked, unfragmented): counts token frames, answers the close frame and ends the socket. */
function wsReader(link: Link, welcome: () => void): (chunk: Buffer) => void {
  const TOKEN = Buffer.from('{"type":"token"');
  const SESSION = Buffer.from('{"type":"session"');
  let rest: Buffer | null = null;
  const frame = (b0: number, payload: Buffer) => {
    if (link.closeCode !== null) {
      link.afterClose++;
      return;
    }
    const opcode = b0 & 0x0f;
    if ((b0 & 0x80) === 0) throw new Error("the server sent a fragmented frame");
    if (opcode === 0x8) {
      link.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      // A client's half of the close handshake: the code echoed, masked.
      const reply = Buffer.alloc(8);
      reply[0] = 0x88;
      reply[1] = 0x80 | 2;
      randomBytes(4).copy(reply, 2);
      reply.writeUInt16BE(link.closeCode, 6);
      for (let i = 0; i < 2; i++) reply[6 + i] = (reply[6 + i] as number) ^ (reply[2 + i] as number);
      link.socket.end(reply);
    } else if (opcode === 0x1) {
      if (payload.subarray(0, TOKEN.length).equals(TOKEN)) link.tokens++;
      else if (payload.subarray(0, SESSION.length).equals(SESSION)) welcome();
    }
  };
  return (chunk) => {
    const buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
    rest = null;
    let off = 0;
    // Bounded: every pass consumes one whole frame of at least two bytes.
    while (buf.length - off >= 2) {
      const b1 = buf[off + 1] as number;
      if (b1 & 0x80) throw new Error("the server sent a masked frame");
      const len7 = b1 & 0x7f;
      const headLen = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
      if (buf.length - off < headLen) break;
      const size = len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(off + 2) : Number(buf.readBigUInt64BE(off + 2));
      if (buf.length - off < headLen + size) break;
      frame(buf[off] as number, buf.subarray(off + headLen, off + headLen + size));
      off += headLen + size;
    }
    if (off < buf.length) rest = buf.subarray(off);
  };
}

/** A chunked event stream: counts token events, keeps the body's tail, ends the socket after the terminating chunk. */
function sseReader(link: Link, welcome: () => void): (chunk: Buffer) => void {
  const TOKEN = "\nevent: token\n";
  const SESSION = "\nevent: session\n";
  let state: "size" | "data" | "crlf" | "trailer" = "size";
  let line = "";
  let left = 0;
  let carry = "";
  const text = (piece: string) => {
    const scan = carry + piece;
    for (let at = scan.indexOf(TOKEN); at >= 0; at = scan.indexOf(TOKEN, at + TOKEN.length)) link.tokens++;
    if (scan.includes(SESSION)) welcome();
    carry = scan.slice(-(SESSION.length - 1));
    link.tail = (link.tail + piece).slice(-256);
  };
  return (chunk) => {
    let off = 0;
    // Bounded: every pass consumes at least one byte of the chunk.
    while (off < chunk.length && !link.bodyEnded) {
      if (state === "data") {
        const take = Math.min(left, chunk.length - off);
        text(chunk.toString("latin1", off, off + take));
        off += take;
        left -= take;
        if (left === 0) state = "crlf";
        continue;
      }
      const nl = chunk.indexOf(0x0a, off);
      const end = nl < 0 ? chunk.length : nl + 1;
      line += chunk.toString("latin1", off, end);
      off = end;
      if (nl < 0) continue;
      const value = line.trimEnd();
      line = "";
      if (state === "size") {
        left = parseInt(value, 16);
        if (!Number.isFinite(left)) throw new Error(`bad chunk size ${JSON.stringify(value)}`);
        state = left === 0 ? "trailer" : "data";
      } else if (state === "crlf") {
        state = "size";
      } else if (value === "") {
        link.bodyEnded = true;
        link.closeCode = lastCloseCode(link.tail);
        // The response is over; the keep-alive connection is of no further use.
        link.socket.end();
      }
    }
  };
}

function lastCloseCode(tail: string): number | null {
  const codes = [...tail.matchAll(/: close (\d+) /g)];
  return codes.length === 0 ? null : Number(codes.at(-1)?.[1]);
}

/** Opens `n` links, a few at a time. */
async function openLinks(transport: Transport, port: number, s: Session, n: number): Promise<Link[]> {
  const links: Link[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      links.push(await openLink(transport, port, s));
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return links;
}

/**
 * The provider's answer: DELTA_CHARS-character deltas with backpressure until `enough()` (every link
 * is gone) or MAX_TURN_CHARS, then a normal finish, so the turn keeps no more text than it needed.
 */
function floodUntil(enough: () => boolean, sentChars: (n: number) => void): Handler {
  const event = `data: ${JSON.stringify(openai.text("lorem ipsum ".repeat(DELTA_CHARS / 12).padEnd(DELTA_CHARS, ".")))}\n\n`;
  return (res: ServerResponse) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    let sent = 0;
    const pump = (): void => {
      while (!res.destroyed && sent < MAX_TURN_CHARS && !enough()) {
        sent += DELTA_CHARS;
        sentChars(sent);
        if (!res.write(event)) {
          res.once("drain", pump);
          return;
        }
      }
      if (!res.destroyed) res.end(openai.sse([openai.finish("stop"), openai.usage(1, Math.ceil(sent / 4))]));
    };
    pump();
  };
}

interface Gauges {
  websockets: number;
  sseStreams: number;
}

async function gauges(base: string): Promise<Gauges> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { websockets: read("agentwire_websockets"), sseStreams: read("agentwire_sse_streams") };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RSS once two reads 100 ms apart agree within 0.5 %: pages touched by the setup have settled. */
async function settledRss(proc: ServerProc): Promise<number> {
  let last = proc.rssBytes();
  for (let i = 0; i < 20; i++) {
    await tick(SAMPLE_MS);
    const now = proc.rssBytes();
    if (Math.abs(now - last) <= last * 0.005) return now;
    last = now;
  }
  return last;
}

interface GroupResult {
  transport: Transport;
  baselineBytes: number;
  peakBytes: number;
  /**
   * (peak RSS - baseline RSS - the turn's text) / links. The turn keeps all its text for its record
   * (its output limit is raised here); the provider's count is an upper bound of what it took.
   */
  perLinkBytes: number;
  /** When the server's gauge stopped counting each link, ms after the turn was started. */
  droppedAfterMs: number[];
  links: Link[];
  /** Text the provider wrote (it stops once every link is gone; some never reached the server). */
  turnChars: number;
  /** From resuming the readers until the last socket closed. */
  readMs: number;
}

async function runGroup(transport: Transport): Promise<GroupResult> {
  let allDropped = false;
  let turnChars = 0;
  const fake = await FakeProvider.start([floodUntil(() => allDropped, (n) => (turnChars = n))]);
  let proc: ServerProc | null = null;
  let links: Link[] = [];
  try {
    proc = await startServerProc(`stalled-${transport}`, {
      AGENTWIRE_AGENT: "openai",
      OPENAI_BASE_URL: `${fake.url}/v1`,
      OPENAI_API_KEY: "sk-stalled",
      AGENTWIRE_MODEL: "m",
      AGENTWIRE_OUTBOX_HARD_BYTES: HARD_BYTES,
      AGENTWIRE_SLOW_READER_TIMEOUT_MS: STALL_MS,
      AGENTWIRE_TURN_MAX_OUTPUT_CHARS: MAX_TURN_CHARS + MB,
      AGENTWIRE_UPSTREAM_MAX_ATTEMPTS: 1,
      AGENTWIRE_CONNECT_BURST_PER_IP: 1000,
    });
    const base = proc.node.base;
    const session = await proc.createSession();
    links = await openLinks(transport, proc.node.port, session, LINKS);
    const held = (g: Gauges) => (transport === "ws" ? g.websockets : g.sseStreams);
    expect(held(await gauges(base))).toBe(LINKS);
    for (const link of links) link.socket.pause();
    const baselineBytes = await settledRss(proc);

    const t0 = performance.now();
    const posted = await fetch(`${base}/v1/sessions/${session.sessionId}/messages?token=${session.token}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "input", text: "go" }),
    });
    expect(posted.status).toBe(202);

    const droppedAfterMs: number[] = [];
    let peakBytes = baselineBytes;
    let polling = false;
    const deadline = t0 + STALL_MS + CLOSE_MARGIN_MS + 5000;
    // Bounded by count and by time: one sample per SAMPLE_MS until every link is gone or the deadline.
    for (let i = 0; i < 400 && !allDropped && performance.now() < deadline; i++) {
      proc.expectAlive(`while ${LINKS} ${transport} links were stalled`);
      peakBytes = Math.max(peakBytes, proc.rssBytes());
      if (!polling) {
        polling = true;
        // One /metrics request in flight at a time: a server busy streaming gets no queue of them.
        void gauges(base)
          .then((g) => {
            const at = performance.now() - t0;
            while (droppedAfterMs.length < LINKS - held(g)) droppedAfterMs.push(at);
            if (held(g) === 0) allDropped = true;
          })
          .catch(() => {})
          .finally(() => {
            polling = false;
          });
      }
      await tick(SAMPLE_MS);
    }
    peakBytes = Math.max(peakBytes, proc.rssBytes());
    expect(droppedAfterMs.length, `${transport} links the server dropped`).toBe(LINKS);
    allDropped = true;

    // The readers resume and read what the server left them, up to the end of each socket.
    for (const link of links) {
      link.resumed = true;
      link.socket.resume();
    }
    const resumedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(links.map((l) => l.gone)), new Promise<void>((r) => (timer = setTimeout(r, READ_MS)))]);
    clearTimeout(timer);
    const readMs = performance.now() - resumedAt;
    // One request, no retry: the turn the links stalled on.
    expect(fake.requests.map((r) => r.body.model)).toEqual(["m"]);
    return { transport, baselineBytes, peakBytes, perLinkBytes: (peakBytes - baselineBytes - turnChars) / LINKS, droppedAfterMs, links, turnChars, readMs };
  } finally {
    for (const link of links) link.socket?.destroy();
    await proc?.stop();
    await fake.close();
  }
}

const kb = (bytes: number) => Math.round(bytes / 1024);

function summary(r: GroupResult): string {
  const sorted = [...r.droppedAfterMs].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  const codes = new Map<string, number>();
  for (const l of r.links) {
    const label = r.transport === "ws" ? (l.closeCode === null ? "no close frame" : String(l.closeCode)) : l.tail.endsWith(CLOSE_COMMENT) ? "4000 comment" : l.bodyEnded ? "ended without comment" : "no end";
    codes.set(label, (codes.get(label) ?? 0) + 1);
  }
  const read = r.links.reduce((s, l) => s + l.bytesAfterResume, 0) / r.links.length;
  return (
    `${r.transport}: RSS baseline ${kb(r.baselineBytes)} KB, peak ${kb(r.peakBytes)} KB, per link ${kb(r.perLinkBytes)} KB (bound ${kb(HARD_BYTES + SLACK_BYTES)} KB); ` +
    `provider wrote ${(r.turnChars / MB).toFixed(1)} MB of text; dropped p50 ${Math.round(p50)} ms, max ${Math.round(sorted.at(-1) ?? Number.NaN)} ms; read after resume ${kb(read)} KB per link in ${Math.round(r.readMs)} ms; ` +
    `ends: ${[...codes].map(([k, n]) => `${k} x${n}`).join(", ")}`
  );
}

describe("stalled links", () => {
  it(
    `100 stalled WebSockets and 100 stalled SSE streams each cost at most the hard cap + ${SLACK_BYTES / 1024} KB of RSS and are closed with 4000 within the stall timeout + ${CLOSE_MARGIN_MS / 1000} s`,
    async ({ annotate }) => {
      // One server per group, one after the other: each peak is its own, and the second group cannot
      // reuse pages the first one's links freed.
      const results: GroupResult[] = [];
      for (const transport of ["ws", "sse"] as const) results.push(await runGroup(transport));
      for (const r of results) await annotate(summary(r));
      for (const r of results) {
        expect(r.perLinkBytes, `${r.transport}: (peak RSS - baseline RSS - turn text) / ${LINKS}`).toBeLessThanOrEqual(HARD_BYTES + SLACK_BYTES);
        expect(Math.max(...r.droppedAfterMs), `${r.transport}: last link dropped, ms after the turn started`).toBeLessThanOrEqual(STALL_MS + CLOSE_MARGIN_MS);
        for (const link of r.links) {
          // Every reader got a backlog of tokens, then the end of its socket.
          expect(link.tokens).toBeGreaterThan(0);
          expect(link.closed).toBe(true);
          if (r.transport === "ws") {
            expect(link.afterClose).toBe(0);
            // uWS may give up on the close handshake of a socket that backed up: no frame at all, but never another code.
            if (link.closeCode !== null) expect(link.closeCode).toBe(4000);
          } else if (link.bodyEnded) {
            expect(link.tail.endsWith(CLOSE_COMMENT), `SSE tail ${JSON.stringify(link.tail.slice(-60))}`).toBe(true);
          } else {
            expect(lastCloseCode(link.tail) ?? 4000).toBe(4000);
          }
        }
      }
    },
    TEST_MS,
  );
});
