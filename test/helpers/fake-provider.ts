// Scripted fake model provider for end-to-end tests: one handler per request, arrival times, streams that drip until closed.
import { type IncomingHttpHeaders, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { type Split, splitBytes } from "./fake-upstream.js";

export interface ProviderRequest {
  url: string;
  headers: IncomingHttpHeaders;
  bodyText: string;
  /** The body parsed as JSON ({} when it is not JSON). */
  body: Record<string, unknown>;
  /** `performance.now()` when the whole request body had arrived. */
  arrivedAt: number;
  /** `performance.now()` when the socket carrying this request closed. */
  socketClosed: Promise<number>;
}

/** Writes the answer to one request. */
export type Handler = (res: ServerResponse) => void;

/** A provider that answers request n with `script[n]`; a request beyond the script gets a 500. */
export class FakeProvider {
  readonly requests: ProviderRequest[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(script: Handler[]): Promise<FakeProvider> {
    let provider: FakeProvider | undefined;
    const server = createServer((req, res) => {
      const socketClosed = new Promise<number>((resolve) => req.socket.once("close", () => resolve(performance.now())));
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const arrivedAt = performance.now();
        const bodyText = Buffer.concat(chunks).toString("utf8");
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(bodyText) as Record<string, unknown>;
        } catch {
          // kept as text only
        }
        const handler = script[provider?.requests.length ?? 0] ?? respond(500, "unscripted request");
        provider?.record({ url: req.url ?? "", headers: req.headers, bodyText, body, arrivedAt, socketClosed });
        handler(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    provider = new FakeProvider(server, `http://127.0.0.1:${port}`);
    return provider;
  }

  /** Resolves with request n (from 0) once it has arrived. */
  async request(n: number): Promise<ProviderRequest> {
    while (this.requests.length <= n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.requests[n] as ProviderRequest;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(r: ProviderRequest): void {
    this.requests.push(r);
    for (const w of this.waiters.splice(0)) w();
  }
}

/** A plain (error) answer, JSON by default. */
export function respond(status: number, body: string, headers: Record<string, string> = {}): Handler {
  return (res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(body);
  };
}

/** An HTTP 200 event stream, written in the pieces `split` cuts it into. */
export function stream(body: string, options: { split?: Split } = {}): Handler {
  return (res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const pieces = splitBytes(new TextEncoder().encode(body), options.split ?? "whole");
    const writeFrom = (i: number): void => {
      if (res.destroyed) return;
      const piece = pieces[i];
      if (piece === undefined) {
        res.end();
        return;
      }
      res.write(piece);
      setImmediate(() => writeFrom(i + 1));
    };
    writeFrom(0);
  };
}

/**
 * An HTTP 200 event stream that sends `head`, then `piece(i)` every `everyMs` until the client
 * goes away: a model generating slowly, for cancel tests.
 */
export function drip(head: string, piece: (i: number) => string, everyMs: number): Handler {
  return (res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(head);
    let i = 0;
    const timer = setInterval(() => {
      if (!res.destroyed) res.write(piece(i++));
    }, everyMs);
    res.on("close", () => clearInterval(timer));
  };
}

/**
 * An HTTP 200 event stream that sends `head`, then waits until the test calls `release` with the
 * rest: lets a test act once the first tokens have reached the client.
 */
export function gated(head: string): { handler: Handler; release(tail: string, finish: "end" | "destroy"): void } {
  let held: ServerResponse | undefined;
  return {
    handler: (res) => {
      held = res;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(head);
    },
    release(tail, finish) {
      const res = held;
      if (!res) throw new Error("gated: the request has not arrived");
      const done = (): void => void (finish === "end" ? res.end() : res.socket?.destroy());
      // Destroy only once the tail is flushed, or it could be dropped with the socket.
      if (tail === "") done();
      else res.write(tail, done);
    },
  };
}

/** Chat Completions stream chunks. */
export const openai = {
  text: (content: string) => ({ choices: [{ index: 0, delta: { content }, finish_reason: null }] }),
  /** A call's fragments: id, type and name on the first only, then argument pieces keyed by index. */
  toolCall: (index: number, id: string, name: string, argPieces: string[]) => [
    { choices: [{ index: 0, delta: { role: "assistant", content: null, tool_calls: [{ index, id, type: "function", function: { name, arguments: "" } }] }, finish_reason: null }] },
    ...argPieces.map((a) => ({ choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: a } }] }, finish_reason: null }] })),
  ],
  finish: (reason: string) => ({ choices: [{ index: 0, delta: {}, finish_reason: reason }] }),
  usage: (prompt: number, completion: number) => ({ choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } }),
  /** The chunks as `data:` events, with `[DONE]` unless told otherwise. */
  sse: (chunks: unknown[], done = true) => chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join("") + (done ? "data: [DONE]\n\n" : ""),
};

/** Messages API stream events. */
export const anthropic = {
  start: (inputTokens: number) => ({
    type: "message_start",
    message: { id: "msg_e2e", type: "message", role: "assistant", content: [], model: "m", stop_reason: null, usage: { input_tokens: inputTokens, output_tokens: 1 } },
  }),
  textBlock: (index: number, pieces: string[]) => [
    { type: "content_block_start", index, content_block: { type: "text", text: "" } },
    ...pieces.map((text) => ({ type: "content_block_delta", index, delta: { type: "text_delta", text } })),
    { type: "content_block_stop", index },
  ],
  toolUseBlock: (index: number, id: string, name: string, jsonPieces: string[]) => [
    { type: "content_block_start", index, content_block: { type: "tool_use", id, name, input: {} } },
    ...jsonPieces.map((partial_json) => ({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } })),
    { type: "content_block_stop", index },
  ],
  stop: (reason: string, outputTokens: number) => [
    { type: "message_delta", delta: { stop_reason: reason, stop_sequence: null }, usage: { output_tokens: outputTokens } },
    { type: "message_stop" },
  ],
  /** The events as `event:` + `data:` pairs, named by their `type`. */
  sse: (events: Array<{ type: string; [field: string]: unknown }>) => events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(""),
};
