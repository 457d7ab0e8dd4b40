// A WebSocket client of one agentwire session for latency probes: stamps every frame on arrival and lets a probe wait for the next frame it cares about.
import { connectRawWs, type RawWs } from "./raw-ws-client.js";
import { nowMs } from "./stats.js";

/** A server frame as the probes read it; only the fields they use are typed. */
export interface Frame {
  type: string;
  seq?: number;
  /** First seq of a merged token frame. */
  from?: number;
  turn?: string;
  status?: string;
  code?: string;
  message?: string;
}

interface Waiter {
  match(frame: Frame): boolean;
  resolve(arrival: Arrival): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface Arrival {
  frame: Frame;
  /** Bench clock (ms) at the top of the socket read that carried the frame. */
  at: number;
}

export class SessionClient {
  private waiters: Waiter[] = [];
  /** When the current socket read began: frames sharing one read share its stamp. */
  private readAt = 0;
  /** Sees every frame, after the waiters. */
  onFrame: ((arrival: Arrival) => void) | null = null;
  /** Error frames and unexpected closes, for the section's notes. */
  readonly problems: string[] = [];

  private constructor(private link: RawWs | null) {}

  /** Connects and waits for the `session` welcome, so events logged from now on reach this client. */
  static async open(host: string, port: number, sessionId: string, token: string): Promise<SessionClient> {
    const client = new SessionClient(null);
    const welcome = client.next((f) => f.type === "session", 10_000);
    // A refused upgrade rejects below; the welcome's own rejection must not go unhandled meanwhile.
    welcome.catch(() => {});
    client.link = await connectRawWs({
      host,
      port,
      path: `/v1/sessions/${sessionId}/ws?token=${token}`,
      onBytes: () => {
        client.readAt = nowMs();
      },
      onMessage: (buf, start, end) => client.receive(buf.toString("utf8", start, end)),
      onClose: () => client.closed(),
    });
    await welcome;
    return client;
  }

  send(message: object): void {
    this.link?.sendText(JSON.stringify(message));
  }

  /** The next frame that matches, stamped with its arrival; rejects after `timeoutMs`. */
  next(match: (frame: Frame) => boolean, timeoutMs = 10_000): Promise<Arrival> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new Error(`no matching frame within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  close(): void {
    this.link?.close();
  }

  private receive(text: string): void {
    // Stamped before any parsing: the parse is the client's cost, not the server's.
    const at = this.readAt;
    const frame = JSON.parse(text) as Frame;
    if (frame.type === "error") this.problems.push(`error frame: ${frame.code}: ${frame.message}`);
    const arrival = { frame, at };
    for (const waiter of this.waiters.filter((w) => w.match(frame))) {
      clearTimeout(waiter.timer);
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(arrival);
    }
    this.onFrame?.(arrival);
  }

  private closed(): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error("the server closed the link"));
    }
    if (this.waiters.length > 0) this.problems.push("the server closed the link");
    this.waiters = [];
  }
}
