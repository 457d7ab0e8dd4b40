// The event plumbing every driver shares: the ordered record of a link's stream, each message checked
// against the protocol's schema, and waits woken as events arrive.
import { ServerMessage } from "@agentwire/protocol";

/**
 * An ordered record of one link's stream, waits on it, and the link's end. Drivers push into it;
 * scenarios read it through `Link`.
 */
export class EventRecord {
  readonly events: ServerMessage[] = [];
  ended = false;
  /** Set when the server broke the protocol on this link: every wait fails with it. */
  failure: Error | null = null;
  private waiters: (() => boolean)[] = [];
  private wakeQueued = false;

  /** Records one decoded frame, checked against the protocol's schema. */
  push(value: unknown): void {
    const parsed = ServerMessage.safeParse(value);
    if (!parsed.success) {
      this.fail(new Error(`the server sent a message outside the protocol: ${JSON.stringify(value).slice(0, 300)}: ${parsed.error.message}`));
      return;
    }
    this.events.push(value as ServerMessage);
    // Frames decoded from one read arrive in one go: check the waiters once for all of them.
    if (!this.wakeQueued) {
      this.wakeQueued = true;
      queueMicrotask(() => {
        this.wakeQueued = false;
        this.wake();
      });
    }
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.end();
  }

  waitFor(predicate: (events: readonly ServerMessage[]) => boolean, label = "condition", timeoutMs = 10_000): Promise<void> {
    if (!this.failure && predicate(this.events)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const fail = (why: string) => reject(new Error(`${why} waiting for ${label}; last events ${JSON.stringify(this.events.slice(-3))}`));
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        fail("timed out");
      }, timeoutMs);
      const check = () => {
        if (this.failure) {
          clearTimeout(timer);
          reject(this.failure);
          return true;
        }
        if (predicate(this.events)) {
          clearTimeout(timer);
          resolve();
          return true;
        }
        if (!this.ended) return false;
        clearTimeout(timer);
        fail("the link ended");
        return true;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  private wake(): void {
    // A waiter that resolves may add another: run the ones registered now, keep the rest.
    const now = this.waiters;
    this.waiters = [];
    const kept = now.filter((check) => !check());
    this.waiters.push(...kept);
  }
}
