// A real `ws` client that records every server message and lets tests wait on events, not sleeps.
import WebSocket from "ws";
import type { ServerMessage } from "@agentwire/protocol";

export class TestClient {
  readonly messages: ServerMessage[] = [];
  closeCode: number | null = null;
  closeReason = "";
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.messages.push(JSON.parse(String(data)) as ServerMessage);
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.closeCode = code;
      this.closeReason = String(reason);
      this.wake();
    });
  }

  static async connect(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
    const ws = new WebSocket(url, options.protocols ?? [], options);
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, res })));
    });
    return client;
  }

  static sessionUrl(wsBase: string, s: { sessionId: string; token: string }, afterSeq?: number): string {
    const after = afterSeq === undefined ? "" : `&afterSeq=${afterSeq}`;
    return `${wsBase}/v1/sessions/${s.sessionId}/ws?token=${s.token}${after}`;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Resolves once `predicate` holds for the messages received so far (checked on every arrival). */
  waitUntil(predicate: (messages: ServerMessage[]) => boolean, label = "condition", timeoutMs = 10_000): Promise<void> {
    if (predicate(this.messages)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}; got ${JSON.stringify(this.messages.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        check: () => predicate(this.messages),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Waits for the first message of `type` matching `where`, scanning each arrival once. */
  async next<T extends ServerMessage["type"]>(type: T, where: (m: Extract<ServerMessage, { type: T }>) => boolean = () => true): Promise<Extract<ServerMessage, { type: T }>> {
    type M = Extract<ServerMessage, { type: T }>;
    let found: M | undefined;
    let scanned = 0;
    await this.waitUntil((ms) => {
      for (; scanned < ms.length && !found; scanned++) {
        const m = ms[scanned] as ServerMessage;
        if (m.type === type && where(m as M)) found = m as M;
      }
      return found !== undefined;
    }, `a ${type} message`);
    return found as M;
  }

  waitForTurnEnd(turn?: string) {
    return this.next("turn_end", (m) => turn === undefined || m.turn === turn);
  }

  waitClosed(): Promise<number> {
    return this.waitUntil(() => this.closeCode !== null, "close").then(() => this.closeCode as number);
  }

  close(): void {
    this.ws.close();
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}

/** Logged events (those with a seq) in arrival order. */
export function logged(messages: ServerMessage[]): (ServerMessage & { seq: number })[] {
  return messages.filter((m): m is ServerMessage & { seq: number } => "seq" in m && typeof m.seq === "number");
}

/** Concatenated token text of one turn. */
export function turnText(messages: ServerMessage[], turn: string): string {
  return messages.filter((m) => m.type === "token" && m.turn === turn).map((m) => (m as { text: string }).text).join("");
}
