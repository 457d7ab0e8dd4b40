// The stalled-readers section's raw client links (WebSocket and SSE on node:net, able to stop reading
// and see how the server let them go), its progress probe, and the kernel's queues read from /proc.
import { readFileSync } from "node:fs";
import { type Socket, connect } from "node:net";
import { HOST } from "./servers/index.js";
import type { CreatedSession } from "./servers/agentwire-sessions.js";
import { FrameParser, OP_CLOSE, OP_TEXT } from "./ws-frames.js";
import { HeadReader, openingRequest } from "./raw-http.js";

export type Transport = "ws" | "sse";
export const LABEL: Record<Transport, string> = { ws: "WebSocket", sse: "SSE" };

export const wsPath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/ws?token=${s.token}`;
export const ssePath = (s: CreatedSession) => `/v1/sessions/${s.sessionId}/events?token=${s.token}`;

// ---------------------------------------------------------------- raw links

/** How a link ended, as its reader saw it once it read again. */
export type Outcome = { kind: "code"; code: number } | { kind: "fin" } | { kind: "reset" } | { kind: "open" };

/** One client link on a raw socket: reads until its socket is paused, and what was left for it once resumed. */
export interface Link {
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

const CLOSE_COMMENT = /: close (\d+) [^\n]*\n/g;
const LAST_CHUNK = "\r\n0\r\n\r\n";

/**
 * Opens a raw link and resolves once the server answered 101 (WebSocket) or 200 (SSE). Close frames
 * and close comments are looked for in everything read, so what a reader sees last is known.
 */
export function openLink(transport: Transport, port: number, path: string, onText?: (buf: Buffer, start: number, end: number) => void): Promise<Link> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port, noDelay: true });
    const link = newLink(transport, socket);
    const head = new HeadReader();
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
      socket.write(openingRequest(transport, HOST, port, path));
    });
    socket.on("data", (chunk: Buffer) => {
      if (link.resumed) link.bytesAfterResume += chunk.length;
      if (head.done) {
        body(chunk);
        return;
      }
      const answer = head.push(chunk);
      if (!answer) return;
      if (!answer.status.startsWith(transport === "ws" ? "HTTP/1.1 101" : "HTTP/1.1 200")) {
        reject(new Error(`${LABEL[transport]} refused: ${answer.status}`));
        socket.destroy();
        return;
      }
      resolve(link);
      if (answer.rest.length > 0) body(answer.rest);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET") link.reset = true;
      if (!head.done) reject(err);
      socket.destroy();
    });
    socket.on("close", () => {
      link.closed = true;
      if (!head.done) reject(new Error(`${LABEL[transport]} closed before its answer`));
    });
  });
}

export async function openLinks(transport: Transport, port: number, paths: readonly string[], concurrency = 32): Promise<Link[]> {
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

export function outcomeOf(link: Link): Outcome {
  if (link.closeCode !== null) return { kind: "code", code: link.closeCode };
  if (link.reset) return { kind: "reset" };
  if (link.closed || link.bodyEnded) return { kind: "fin" };
  return { kind: "open" };
}

/**
 * A live WebSocket on one more session, whose turn runs alongside the others: the seq it reads tells
 * how far every turn has got (the demo agent takes turns in equal slices), so RSS can be compared at
 * equal progress.
 */
export interface Probe {
  link: Link;
  seq(): number;
}

const SEQ_KEY = Buffer.from('"seq":');

export async function openProbe(port: number, session: CreatedSession): Promise<Probe> {
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

// ---------------------------------------------------------------- the kernel's view

/** The largest send buffer the kernel lets a TCP socket grow to (tcp_wmem max). */
export function kernelSendMaxBytes(): number {
  try {
    const max = Number(readFileSync("/proc/sys/net/ipv4/tcp_wmem", "utf8").trim().split(/\s+/)[2]);
    return Number.isFinite(max) && max > 0 ? max : 4 * 1024 * 1024;
  } catch {
    return 4 * 1024 * 1024;
  }
}

/** The kernel's view of the links to `serverPort` (IPv4 loopback), keyed by the client's port. */
export interface TcpView {
  /** Server-side socket state (hex, "01" = ESTABLISHED), or undefined once it is gone. */
  serverState: string | undefined;
  serverTx: number;
  clientRx: number;
}

export function readTcp(serverPort: number): Map<number, TcpView> | null {
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
