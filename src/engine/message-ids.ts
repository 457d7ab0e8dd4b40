// The ids of client messages a session has taken, so a message resent after a lost acknowledgement is answered
// again, never applied twice (a second turn would spend twice).
import { fnv1a } from "./fnv.js";

/** A taken message: the turn it started, if any, and a fingerprint of its content (-1: unknown, any content matches). */
interface Taken {
  turn: string | undefined;
  print: number;
}

/** How a session stores the window with its state: `[id, fingerprint, turn or null]`, oldest first. */
export type MessageIdEntry = [string, number, string | null];

/** Set when the same id already named a different message. */
export const ID_CONFLICT = Symbol("id conflict");

/** A hash of the message's JSON: a resend parses to the same JSON, a different message almost surely not. */
export function fingerprint(message: unknown): number {
  return fnv1a(JSON.stringify(message));
}

/** The newest `capacity` ids a session took; older ones fall out (a client resends only what it sent recently). */
export class MessageIds {
  private readonly taken = new Map<string, Taken>();

  constructor(private readonly capacity: number) {}

  static restore(entries: readonly MessageIdEntry[] | undefined, capacity: number): MessageIds {
    const ids = new MessageIds(capacity);
    for (const [id, print, turn] of entries ?? []) ids.remember(id, print, turn ?? undefined);
    return ids;
  }

  /** What an earlier message with this id did, `ID_CONFLICT` when it had other content, undefined when the id is new. */
  find(id: string, print: number): Taken | typeof ID_CONFLICT | undefined {
    const taken = this.taken.get(id);
    if (!taken) return undefined;
    return taken.print === -1 || taken.print === print ? taken : ID_CONFLICT;
  }

  remember(id: string, print: number, turn?: string): void {
    if (this.capacity === 0) return;
    this.taken.delete(id);
    this.taken.set(id, { turn, print });
    if (this.taken.size > this.capacity) this.taken.delete(this.taken.keys().next().value as string);
  }

  /** The turn a taken message started, once it is known. */
  settle(id: string, turn: string | undefined): void {
    const taken = this.taken.get(id);
    if (taken) taken.turn = turn;
  }

  /** What the log says: input `id` started `turn`. Fills in the turn of an id known without one, or adds the id. */
  learn(id: string, turn: string): void {
    const taken = this.taken.get(id);
    if (taken) taken.turn ??= turn;
    else this.remember(id, -1, turn);
  }

  forget(id: string): void {
    this.taken.delete(id);
  }

  get size(): number {
    return this.taken.size;
  }

  entries(): MessageIdEntry[] {
    return [...this.taken].map(([id, t]) => [id, t.print, t.turn ?? null]);
  }
}
