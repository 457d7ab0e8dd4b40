// A WebSocket client on node:net with a hand-written upgrade: cheap enough to drive servers flat out or hold 10k links.
import { type Socket, connect } from "node:net";
import { FrameParser, type MessageHandler, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, clientFrame } from "./ws-frames.js";
import { HeadReader, openingRequest } from "./raw-http.js";

export interface RawWsOptions {
  host: string;
  port: number;
  /** Path and query of the upgrade request. */
  path: string;
  /** Text and binary messages; pings are answered and closes handled here. */
  onMessage?: MessageHandler;
  /** Raw bytes read after the handshake, frame headers included. */
  onBytes?: (count: number) => void;
  onClose?: () => void;
}

export class RawWs {
  closed = false;

  constructor(readonly socket: Socket) {}

  sendText(text: string): void {
    if (!this.closed) this.socket.write(clientFrame(OP_TEXT, Buffer.from(text)));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
  }
}

/** Opens the socket and completes the upgrade; rejects with the status line when the server refuses. */
export function connectRawWs(options: RawWsOptions): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host, port: options.port, noDelay: true });
    const ws = new RawWs(socket);
    const onMessage = options.onMessage ?? (() => {});
    const parser = new FrameParser((buf, start, end, opcode) => {
      if (opcode === OP_PING) socket.write(clientFrame(OP_PONG, Buffer.from(buf.subarray(start, end))));
      else if (opcode === OP_CLOSE) ws.close();
      else if (opcode !== OP_PONG) onMessage(buf, start, end, opcode);
    });
    const head = new HeadReader();
    socket.once("connect", () => socket.write(openingRequest("ws", options.host, options.port, options.path)));
    socket.on("data", (chunk: Buffer) => {
      if (head.done) {
        options.onBytes?.(chunk.length);
        parser.push(chunk);
        return;
      }
      const answer = head.push(chunk);
      if (!answer) return;
      if (!answer.status.startsWith("HTTP/1.1 101")) {
        reject(new Error(`upgrade refused: ${answer.status} ${answer.rest.toString("utf8").slice(0, 200)}`));
        ws.close();
        return;
      }
      resolve(ws);
      if (answer.rest.length > 0) {
        options.onBytes?.(answer.rest.length);
        parser.push(answer.rest);
      }
    });
    socket.on("error", (err) => {
      if (!head.done) reject(err);
      ws.close();
    });
    socket.on("close", () => {
      ws.closed = true;
      if (head !== null) reject(new Error("connection closed during the upgrade"));
      options.onClose?.();
    });
  });
}

/**
 * Opens one link per path, `concurrency` upgrades in flight at a time; on a failure closes what it opened.
 * `connect` opens one (a plain WebSocket by default; the Socket.IO client passes its own handshake).
 */
export async function openMany(
  host: string,
  port: number,
  paths: readonly string[],
  concurrency = 128,
  connect: (options: { host: string; port: number; path: string }) => Promise<RawWs> = connectRawWs,
): Promise<RawWs[]> {
  const links: RawWs[] = [];
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++] as string;
      links.push(await connect({ host, port, path }));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  } catch (err) {
    for (const link of links) link.close();
    throw err;
  }
  return links;
}
