// A raw node:net HTTP/1.1 reader for SSE: the exact response head, and each chunked body chunk with its arrival time.
import net from "node:net";

export interface RawChunk {
  text: string;
  /** performance.now() when the chunk's last byte arrived. */
  at: number;
}

export class RawSseConnection {
  /** Status line and headers, exactly as sent (CRLF separated, without the blank line). */
  head: string | null = null;
  readonly chunks: RawChunk[] = [];
  /** The terminating zero-size chunk arrived: the server ended the response. */
  finished = false;
  closed = false;
  private pending = Buffer.alloc(0);
  private state: "head" | "size" | "data" | "crlf" | "done" = "head";
  private remaining = 0;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (data) => {
      this.pending = Buffer.concat([this.pending, data]);
      this.decode(performance.now());
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  /** Sends `GET path` with `headers` and resolves once the socket is connected. */
  static open(port: number, path: string, headers: Record<string, string> = {}): Promise<RawSseConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        const lines = [`GET ${path} HTTP/1.1`, "Host: 127.0.0.1", "Accept: text/event-stream", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
        socket.write(`${lines.join("\r\n")}\r\n\r\n`);
        resolve(conn);
      });
      const conn = new RawSseConnection(socket);
      socket.once("error", reject);
    });
  }

  /** The body as text so far. */
  get body(): string {
    return this.chunks.map((c) => c.text).join("");
  }

  waitUntil(predicate: () => boolean, label = "condition", timeoutMs = 10_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}; body so far ${JSON.stringify(this.body.slice(-400))}`)), timeoutMs);
      this.waiters.push({
        check: predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private decode(at: number): void {
    for (;;) {
      if (this.state === "head") {
        const end = this.pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        this.head = this.pending.subarray(0, end).toString("latin1");
        this.pending = this.pending.subarray(end + 4);
        this.state = "size";
      } else if (this.state === "size") {
        const end = this.pending.indexOf("\r\n");
        if (end < 0) return;
        this.remaining = Number.parseInt(this.pending.subarray(0, end).toString("latin1"), 16);
        this.pending = this.pending.subarray(end + 2);
        this.state = this.remaining === 0 ? "done" : "data";
        if (this.state === "done") this.finished = true;
      } else if (this.state === "data") {
        if (this.pending.length < this.remaining) return;
        this.chunks.push({ text: this.pending.subarray(0, this.remaining).toString("utf8"), at });
        this.pending = this.pending.subarray(this.remaining);
        this.state = "crlf";
      } else if (this.state === "crlf") {
        // The CRLF closing a chunk may come only with the next write: the chunk already counts as arrived.
        if (this.pending.length < 2) return;
        this.pending = this.pending.subarray(2);
        this.state = "size";
      } else {
        return;
      }
    }
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}
