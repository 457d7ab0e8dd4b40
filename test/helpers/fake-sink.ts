// An in-memory Sink for engine unit tests: records frames and lets a test simulate a lagging socket.
import type { ServerMessage } from "@agentwire/protocol";
import type { Sink } from "../../src/engine/index.js";

export class FakeSink implements Sink {
  readonly frames: string[] = [];
  buffered = 0;
  /** When set, every write adds its length to `buffered`, like a socket the peer does not read. */
  growOnWrite = false;
  closed: { code: number; reason: string } | null = null;
  private listeners: (() => boolean)[] = [];

  write(frame: string): boolean {
    if (this.closed) return false;
    this.frames.push(frame);
    if (this.growOnWrite) this.buffered += frame.length;
    this.notify();
    return true;
  }

  writeMany(frames: readonly string[]): boolean {
    if (this.closed) return false;
    this.frames.push(...frames);
    if (this.growOnWrite) for (const f of frames) this.buffered += f.length;
    this.notify();
    return true;
  }

  bufferedAmount(): number {
    return this.buffered;
  }

  close(code: number, reason: string): void {
    this.closed = { code, reason };
    this.notify();
  }

  private parsed: ServerMessage[] = [];

  /** Parsed frames; parsed once each, so waiting on long streams stays linear. */
  get messages(): ServerMessage[] {
    for (let i = this.parsed.length; i < this.frames.length; i++) this.parsed.push(JSON.parse(this.frames[i] as string) as ServerMessage);
    return this.parsed;
  }

  /** Resolves when `predicate` holds over the messages written so far. */
  until(predicate: (messages: ServerMessage[]) => boolean, timeoutMs = 5000): Promise<ServerMessage[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const messages = this.messages;
        if (!predicate(messages)) return false;
        clearTimeout(timer);
        resolve(messages);
        return true;
      };
      const timer = setTimeout(() => reject(new Error(`timed out; last frames: ${this.frames.slice(-4).join(" ")}`)), timeoutMs);
      if (!check()) this.listeners.push(check);
    });
  }

  private notify(): void {
    this.listeners = this.listeners.filter((check) => !check());
  }
}
