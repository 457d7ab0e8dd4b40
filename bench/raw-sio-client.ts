// Socket.IO 4 over the raw WebSocket client: engine.io's v4 handshake and the default namespace's connect, packets read as bytes, cheap enough to drive Socket.IO flat out or hold thousands of links.
import { type RawWs, connectRawWs, openMany } from "./raw-ws-client.js";

/** The upgrade a Socket.IO client opens with when it skips long-polling. */
export const SIO_PATH = "/socket.io/?EIO=4&transport=websocket";

/** engine.io packet types, the first byte of every WebSocket message. */
const EIO_OPEN = 0x30;
const EIO_PING = 0x32;
const EIO_MESSAGE = 0x34;
/** Socket.IO packet types, the second byte of an engine.io message. */
const SIO_CONNECT = 0x30;
const SIO_EVENT = 0x32;
const SIO_CONNECT_ERROR = 0x34;

export interface RawSioOptions {
  host: string;
  port: number;
  /** @default SIO_PATH */
  path?: string;
  /** The JSON array of one event on the default namespace (`["name",arg...]`), `buf[start..end)`, valid only during the call. */
  onEvent?: (buf: Buffer, start: number, end: number) => void;
  /** Raw bytes read after the handshake, frame headers included. */
  onBytes?: (count: number) => void;
  onClose?: () => void;
  /** @default 10000 */
  timeoutMs?: number;
}

/**
 * Opens the WebSocket, answers engine.io's open packet with a connect to `/` (`40`), and resolves once
 * the server acknowledges it (`40{"sid":...}`): only then does Socket.IO hand events to the app.
 * Pings (`2`) are answered with pongs (`3`) for the link's whole life.
 */
export function connectRawSio(options: RawSioOptions): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    let link: RawWs | null = null;
    let opened = false;
    let connected = false;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => fail(new Error(`no Socket.IO connect within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
      link?.close();
    };
    const onMessage = (buf: Buffer, start: number, end: number) => {
      const type = buf[start];
      if (type === EIO_MESSAGE) {
        const packet = buf[start + 1];
        if (packet === SIO_EVENT) options.onEvent?.(buf, start + 2, end);
        else if (packet === SIO_CONNECT && !connected && link) {
          connected = true;
          clearTimeout(timer);
          resolve(link);
        } else if (packet === SIO_CONNECT_ERROR) fail(new Error(`Socket.IO refused the connect: ${buf.toString("utf8", start, Math.min(end, start + 200))}`));
      } else if (type === EIO_PING) link?.sendText("3");
      else if (type === EIO_OPEN && !opened) {
        opened = true;
        // The open packet can come in the chunk that ends the upgrade, before the link is handed over.
        link?.sendText("40");
      }
    };
    connectRawWs({
      host: options.host,
      port: options.port,
      path: options.path ?? SIO_PATH,
      onMessage,
      onBytes: options.onBytes,
      onClose: () => {
        if (!connected) fail(new Error("the link closed before Socket.IO acknowledged the connect"));
        options.onClose?.();
      },
    }).then((ws) => {
      link = ws;
      if (opened) ws.sendText("40");
    }, fail);
  });
}

/** Opens one Socket.IO link per path, `concurrency` at a time; on a failure closes what it opened. */
export function openManySio(host: string, port: number, paths: readonly string[], concurrency = 128): Promise<RawWs[]> {
  return openMany(host, port, paths, concurrency, connectRawSio);
}
