// An SSE client on node:net: one GET, chunked decoding and event-stream lines read as bytes, cheap enough to drive servers flat out or hold thousands of streams.
import { type Socket, connect } from "node:net";
import { HeadReader, openingRequest } from "./raw-http.js";

export interface RawSseOptions {
  host: string;
  port: number;
  /** Path and query of the event-stream request. */
  path: string;
  /** The `data:` payload of one event, `buf[start..end)`, valid only during the call; `id` is -1 when the event had none. */
  onEvent?: (buf: Buffer, start: number, end: number, id: number) => void;
  /** Raw bytes read after the response head, chunk framing included. */
  onBytes?: (count: number) => void;
  onClose?: () => void;
}

export class RawSse {
  closed = false;

  constructor(readonly socket: Socket) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
  }
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

/**
 * Event-stream lines out of body bytes. Only `data:` and `id:` matter here: agentwire's data is the
 * same JSON as its WebSocket frames and names its own type, so `event:` lines need no reading.
 * A load client must cost far less than the server it drives, so this reads bytes in place rather than
 * decoding text like the shared parser (`@agentwire/protocol/sse`); a unit test checks that both read
 * agentwire's streams alike, however they are split.
 */
export class EventStreamParser {
  private partial: Buffer | null = null;
  private data: Buffer | null = null;
  private dataStart = 0;
  private dataEnd = 0;
  private id = -1;

  constructor(private readonly onEvent: (buf: Buffer, start: number, end: number, id: number) => void) {}

  /** Body bytes `buf[from..to)`; a line cut at `to` waits for the next call. */
  push(buf: Buffer, from: number, to: number): void {
    let pos = from;
    if (this.partial !== null) {
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= to) {
        this.partial = Buffer.concat([this.partial, buf.subarray(pos, to)]);
        return;
      }
      const line = Buffer.concat([this.partial, buf.subarray(pos, nl + 1)]);
      this.partial = null;
      this.line(line, 0, line.length - 1);
      pos = nl + 1;
    }
    while (pos < to) {
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= to) {
        this.partial = Buffer.from(buf.subarray(pos, to));
        return;
      }
      this.line(buf, pos, nl);
      pos = nl + 1;
    }
  }

  /** One line `buf[start..end)`, its LF excluded. */
  private line(buf: Buffer, start: number, end: number): void {
    const stop = end > start && buf[end - 1] === CR ? end - 1 : end;
    if (stop === start) {
      if (this.data !== null) this.onEvent(this.data, this.dataStart, this.dataEnd, this.id);
      this.data = null;
      this.id = -1;
      return;
    }
    const first = buf[start];
    if (first === COLON) return;
    // "data:" and "id:" told apart by their first letter and colon; anything else (event, retry) is skipped.
    if (first === 0x64 && buf[start + 4] === COLON) {
      let from = start + 5;
      if (buf[from] === SPACE) from++;
      if (this.data === null) {
        this.data = buf;
        this.dataStart = from;
        this.dataEnd = stop;
      } else {
        // A second data line joins the first with LF, as the spec says; agentwire never sends one.
        const joined = Buffer.concat([this.data.subarray(this.dataStart, this.dataEnd), Buffer.from("\n"), buf.subarray(from, stop)]);
        this.data = joined;
        this.dataStart = 0;
        this.dataEnd = joined.length;
      }
    } else if (first === 0x69 && buf[start + 2] === COLON) {
      let id = 0;
      for (let i = start + 3; i < stop; i++) {
        const digit = (buf[i] as number) - 0x30;
        if (digit >= 0 && digit <= 9) id = id * 10 + digit;
      }
      this.id = id;
    }
  }
}

/** Undoes HTTP/1.1 chunked transfer coding, handing each piece of payload on without copying it. */
class ChunkedDecoder {
  /** Payload bytes left in the current chunk; -1 while reading a size line, -2 while skipping the CRLF after a chunk. */
  private left = -1;
  private size = 0;
  private sizeRead = false;
  ended = false;

  constructor(private readonly onPayload: (buf: Buffer, from: number, to: number) => void) {}

  push(buf: Buffer): void {
    let pos = 0;
    const len = buf.length;
    while (pos < len && !this.ended) {
      if (this.left > 0) {
        const take = Math.min(this.left, len - pos);
        this.onPayload(buf, pos, pos + take);
        pos += take;
        this.left -= take;
        if (this.left === 0) this.left = -2;
        continue;
      }
      const byte = buf[pos++] as number;
      if (this.left === -2) {
        if (byte === LF) this.left = -1;
        continue;
      }
      if (byte === LF) {
        this.ended = this.size === 0;
        this.left = this.size;
        this.size = 0;
        this.sizeRead = false;
        continue;
      }
      if (this.sizeRead) continue;
      const digit = hexDigit(byte);
      // CR or a chunk extension ends the size; the rest of the line is skipped.
      if (digit < 0) this.sizeRead = true;
      else this.size = this.size * 16 + digit;
    }
  }
}

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

/** Opens the stream; resolves once the first event (agentwire's `session` welcome) has arrived, rejects on a non-200 answer. */
export function connectRawSse(options: RawSseOptions): Promise<RawSse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host, port: options.port, noDelay: true });
    const sse = new RawSse(socket);
    let welcomed = false;
    const parser = new EventStreamParser((buf, start, end, id) => {
      if (!welcomed) {
        welcomed = true;
        resolve(sse);
      }
      options.onEvent?.(buf, start, end, id);
    });
    let body: ((buf: Buffer) => void) | null = null;
    const head = new HeadReader();
    socket.once("connect", () => socket.write(openingRequest("sse", options.host, options.port, options.path)));
    socket.on("data", (chunk: Buffer) => {
      if (body !== null) {
        options.onBytes?.(chunk.length);
        body(chunk);
        return;
      }
      const answer = head.push(chunk);
      if (!answer) return;
      const { text, rest } = answer;
      if (!text.startsWith("HTTP/1.1 200")) {
        reject(new Error(`event stream refused: ${answer.status} ${rest.toString("utf8").slice(0, 200)}`));
        sse.close();
        return;
      }
      if (/\r\ntransfer-encoding:\s*chunked/i.test(text)) {
        const decoder = new ChunkedDecoder((buf, from, to) => parser.push(buf, from, to));
        body = (buf) => decoder.push(buf);
      } else {
        body = (buf) => parser.push(buf, 0, buf.length);
      }
      if (rest.length > 0) {
        options.onBytes?.(rest.length);
        body(rest);
      }
    });
    socket.on("error", (err) => {
      if (!welcomed) reject(err);
      sse.close();
    });
    socket.on("close", () => {
      sse.closed = true;
      if (!welcomed) reject(new Error("connection closed before the first event"));
      options.onClose?.();
    });
  });
}

/** Opens one stream per path, `concurrency` at a time; on a failure closes what it opened. */
export async function openManySse(host: string, port: number, paths: readonly string[], concurrency = 128): Promise<RawSse[]> {
  const streams: RawSse[] = [];
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++] as string;
      streams.push(await connectRawSse({ host, port, path }));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  } catch (err) {
    for (const stream of streams) stream.close();
    throw err;
  }
  return streams;
}
