// Fake model provider for tests: a node:http server on port 0 that serves scripted answers and records what it saw.
import { readFileSync } from "node:fs";
import { type IncomingHttpHeaders, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { mulberry32 } from "../../src/agents/demo.js";

/** The upstream stream fixtures (see their README), inside this repository. */
export const FIXTURES_DIR = new URL("../fixtures/upstream/", import.meta.url);

export const FIXTURE_NAMES = [
  "openai-chat-text.sse",
  "openai-chat-tool-calls.sse",
  "anthropic-messages-text.sse",
  "anthropic-messages-tool-use.sse",
  "anthropic-messages-overloaded-midstream.sse",
] as const;

export function fixture(name: (typeof FIXTURE_NAMES)[number]): string {
  return readFileSync(new URL(name, FIXTURES_DIR), "utf8");
}

const crlf = (text: string): string => text.replace(/\n/g, "\r\n");
/** A keep-alive comment before every event and one inside each event. */
const comments = (text: string): string =>
  text
    .split("\n\n")
    .map((block) => (block === "" ? block : `: keep-alive\n${block.replace("\n", "\n:x\n")}`))
    .join("\n\n");
/** JSON data split over two `data:` lines after its opening brace; the `\n` join is JSON whitespace. */
const multiline = (text: string): string => text.replace(/^data: \{/gm, "data: {\ndata: ");

/** Rewrites of a fixture that real upstreams produce; all must parse to the same events. */
export const variants = {
  plain: (text: string): string => text,
  crlf,
  cr: (text: string): string => text.replace(/\n/g, "\r"),
  comments,
  multiline,
  /** All of the above at once, with CRLF line ends. */
  mixed: (text: string): string => crlf(comments(multiline(text))),
} as const;
export type VariantName = keyof typeof variants;

/** How to cut a body into writes. */
export type Split = "whole" | "bytes" | { at: number[] } | { random: number; pieces: number };

export function splitBytes(body: Uint8Array, split: Split): Uint8Array[] {
  if (split === "whole") return [body];
  if (split === "bytes") return Array.from(body, (_, i) => body.subarray(i, i + 1));
  let cuts: number[];
  if ("at" in split) cuts = split.at;
  else {
    const rand = seeded(split.random);
    cuts = Array.from({ length: split.pieces - 1 }, () => Math.floor(rand() * body.length));
  }
  const points = [...new Set([0, ...cuts.filter((c) => c > 0 && c < body.length), body.length])].sort((a, b) => a - b);
  return points.slice(1).map((end, i) => body.subarray(points[i], end));
}

/** A deterministic PRNG so "random" splits reproduce. */
export const seeded = mulberry32;

export type Reply =
  /** A plain answer, e.g. `{ status: 429, headers: { "retry-after": "0" } }`. */
  | { status: number; headers?: Record<string, string>; body?: string }
  | {
      /** An HTTP 200 `text/event-stream` body. */
      stream: string | Uint8Array;
      split?: Split;
      /** Wait before sending the status line and headers. */
      headerDelayMs?: number;
      /** Wait after the headers before the first body byte. */
      firstByteDelayMs?: number;
      /** After the last chunk: end cleanly, destroy the socket mid-stream, or keep it open. @default "end" */
      finish?: "end" | "destroy" | "hold";
    };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bodyText: string;
  /** The body parsed as JSON. */
  body: Record<string, unknown>;
  /** `performance.now()` when the socket carrying this request closed. */
  socketClosed: Promise<number>;
  /** Resolves once the reply is written out, or the client went away first. */
  written: Promise<void>;
}

export class FakeUpstream {
  readonly requests: RecordedRequest[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /** Starts a server answering request n with `replies[n]` (the last reply repeats) or `replies(n)`. */
  static async start(replies: Reply[] | ((n: number) => Reply)): Promise<FakeUpstream> {
    let fake: FakeUpstream | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const n = fake?.requests.length ?? 0;
        const reply = typeof replies === "function" ? replies(n) : replies[Math.min(n, replies.length - 1)];
        const bodyText = Buffer.concat(chunks).toString("utf8");
        const socketClosed = new Promise<number>((resolve) => req.socket.once("close", () => resolve(performance.now())));
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(bodyText) as Record<string, unknown>;
        } catch {
          // recorded as text only
        }
        const written = reply ? serve(res, reply) : Promise.resolve(void res.writeHead(500).end("no reply scripted"));
        fake?.record({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, bodyText, body, socketClosed, written });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    fake = new FakeUpstream(server, `http://127.0.0.1:${port}`);
    return fake;
  }

  /** Resolves with request n (from 0) once it has arrived. */
  async request(n: number): Promise<RecordedRequest> {
    while (this.requests.length <= n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.requests[n] as RecordedRequest;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(r: RecordedRequest): void {
    this.requests.push(r);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

async function serve(res: ServerResponse, reply: Reply): Promise<void> {
  if ("status" in reply) {
    res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
    res.end(reply.body ?? "");
    return;
  }
  let closed = false;
  res.on("close", () => {
    closed = true;
  });
  const wait = (ms: number | undefined) =>
    new Promise<void>((resolve) => {
      if (!ms) return resolve();
      const timer = setTimeout(resolve, ms);
      res.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  await wait(reply.headerDelayMs);
  if (closed) return;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
  await wait(reply.firstByteDelayMs);
  const bytes = typeof reply.stream === "string" ? new TextEncoder().encode(reply.stream) : reply.stream;
  for (const chunk of splitBytes(bytes, reply.split ?? "whole")) {
    if (closed) return;
    res.write(chunk);
    // Yield so consecutive chunks tend to leave in separate TCP segments and reads.
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (closed) return;
  const finish = reply.finish ?? "end";
  if (finish === "end") res.end();
  else if (finish === "destroy") res.socket?.destroy();
}
