// The HTTP/1.1 part of the raw-socket clients (bench load clients, stalled readers, the stalled-link memory test):
// the request each transport opens with, and the response head read from the first chunks.
import { randomBytes } from "node:crypto";

/** The request line and headers that open a WebSocket (`ws`) or an event stream (`sse`) at `path`. */
export function openingRequest(transport: "ws" | "sse", host: string, port: number, path: string): string {
  if (transport === "sse") return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n\r\n`;
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

export interface ResponseHead {
  /** `HTTP/1.1 101 Switching Protocols`. */
  status: string;
  /** The whole head, status line and headers, without the blank line. */
  text: string;
  /** Body bytes that came in the same chunk as the head's end. */
  rest: Buffer;
}

const HEAD_END = Buffer.from("\r\n\r\n");

/** Gathers the response head from the socket's first chunks; `done` once it has handed it over. */
export class HeadReader {
  private head: Buffer | null = Buffer.alloc(0);

  get done(): boolean {
    return this.head === null;
  }

  /** Null while the head is incomplete; the head once, when its end arrives. */
  push(chunk: Buffer): ResponseHead | null {
    if (this.head === null) return null;
    const head = Buffer.concat([this.head, chunk]);
    const end = head.indexOf(HEAD_END);
    if (end < 0) {
      this.head = head;
      return null;
    }
    this.head = null;
    const text = head.toString("latin1", 0, end);
    const lineEnd = text.indexOf("\r\n");
    return { status: lineEnd < 0 ? text : text.slice(0, lineEnd), text, rest: head.subarray(end + 4) };
  }
}
