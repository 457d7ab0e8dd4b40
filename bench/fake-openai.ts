// A fake OpenAI-compatible upstream inside the bench process: streams Chat Completions SSE on cue and stamps its own writes and closes on the bench clock.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { nowMs } from "./stats.js";

/**
 * `prompt`: the head and a role chunk at once, the first content after `firstContentDelayMs` (the
 * model thinking), the rest when the probe calls `finish()`. `slow`: one content chunk every
 * `slowChunkMs` until the reply is done or the caller hangs up.
 */
export type UpstreamStyle = "prompt" | "slow";

export interface UpstreamCall {
  /** Bench clock (ms) just before the first content chunk was written. */
  firstContent: Promise<number>;
  /** Bench clock (ms) when the request's socket closed before the reply ended (a cancel reached us). */
  hungUp: Promise<number>;
  /** Writes the rest of a `prompt` reply and ends it. */
  finish(): void;
}

const FIRST_CONTENT_DELAY_MS = 3;
const SLOW_CHUNK_MS = 20;
/** Chunks of a slow reply before it ends by itself: far longer than any cancel takes to arrive. */
const SLOW_CHUNKS = 500;
const REST = [" from", " the", " fake", " upstream", "."];

const chunk = (delta: object, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 0, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const USAGE = `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 0, model: "m", choices: [], usage: { prompt_tokens: 8, completion_tokens: 6, total_tokens: 14 } })}\n\n`;
const END = `${chunk({}, "stop")}${USAGE}data: [DONE]\n\n`;

export class FakeOpenAI {
  style: UpstreamStyle = "prompt";
  private readonly calls: ((call: UpstreamCall) => void)[] = [];
  private readonly early: UpstreamCall[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeOpenAI> {
    let upstream: FakeOpenAI | null = null;
    const server = createServer((req, res) => upstream?.handle(req, res));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    upstream = new FakeOpenAI(server, (server.address() as AddressInfo).port);
    return upstream;
  }

  /** The next request agentwire makes (or one that already came and nobody took yet). */
  nextCall(): Promise<UpstreamCall> {
    const ready = this.early.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.calls.push(resolve));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let contentAt!: (t: number) => void;
    let hungUpAt!: (t: number) => void;
    let finish = () => {};
    const call: UpstreamCall = {
      firstContent: new Promise((resolve) => {
        contentAt = resolve;
      }),
      hungUp: new Promise((resolve) => {
        hungUpAt = resolve;
      }),
      finish: () => finish(),
    };
    const style = this.style;
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(chunk({ role: "assistant", content: "" }));
      if (style === "prompt") this.prompt(res, contentAt, (f) => {
        finish = f;
      });
      else this.slow(req, res, contentAt, hungUpAt);
    });
    const waiting = this.calls.shift();
    if (waiting) waiting(call);
    else this.early.push(call);
  }

  private prompt(res: ServerResponse, contentAt: (t: number) => void, setFinish: (f: () => void) => void): void {
    let done = false;
    setFinish(() => {
      if (done) return;
      done = true;
      res.end(`${REST.map((text) => chunk({ content: text })).join("")}${END}`);
    });
    setTimeout(() => {
      const piece = chunk({ content: "Hello" });
      contentAt(nowMs());
      res.write(piece);
    }, FIRST_CONTENT_DELAY_MS);
  }

  private slow(req: IncomingMessage, res: ServerResponse, contentAt: (t: number) => void, hungUpAt: (t: number) => void): void {
    let sent = 0;
    const write = () => {
      if (sent === 0) contentAt(nowMs());
      res.write(chunk({ content: ` w${sent}` }));
      if (++sent < SLOW_CHUNKS) return;
      clearInterval(timer);
      res.end(END);
    };
    const timer = setInterval(write, SLOW_CHUNK_MS);
    write();
    req.socket.once("close", () => {
      hungUpAt(nowMs());
      clearInterval(timer);
    });
  }
}

export const UPSTREAM_PACING = { firstContentDelayMs: FIRST_CONTENT_DELAY_MS, slowChunkMs: SLOW_CHUNK_MS };
