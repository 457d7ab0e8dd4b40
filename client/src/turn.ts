// One turn as the application sees it: its events as they stream (callbacks or async iteration), the text so far,
// and how it ended.
import type { LoggedEvent, TurnStatus } from "@agentwire/protocol";
import { Emitter } from "./emitter.js";
import type { AgentwireError } from "./errors.js";

export interface TurnUsage {
  inputTokens: number;
  outputTokens: number;
}

export interface TurnResult {
  status: TurnStatus;
  /** `stop`, `cancelled`, `interrupted`, an error code... */
  reason: string;
  text: string;
  usage: TurnUsage | null;
}

export interface TurnEvents {
  /** Every logged event of the turn, once each, in `seq` order. */
  event: LoggedEvent;
  /** A piece of answer text (merged frames arrive as one piece). */
  text: string;
  /** The turn waits in the server's admission queue: `position` turns are ahead of it (0: next). */
  queued: { position: number; etaMs?: number };
  end: TurnResult;
}

/** How a turn reaches its client (cancel) without a dependency on it. */
export interface TurnOwner {
  cancel(turn?: string): Promise<void>;
}

export class Turn extends Emitter<TurnEvents> implements AsyncIterable<LoggedEvent> {
  /** The server's turn id (`t3`), once the input's ack or the turn's `turn_start` named it. */
  id: string | null = null;
  /** `pending` until the server names it; `queued` while it waits for a slot on the server; `running`; then its final status. */
  status: "pending" | "queued" | "running" | TurnStatus = "pending";
  /** While `queued`: turns ahead of it (0: next); null otherwise. */
  queuePosition: number | null = null;
  text = "";
  reason: string | null = null;
  usage: TurnUsage | null = null;
  /** Resolves when the turn ends (whatever its status); rejects when the input that would start it was refused. */
  readonly done: Promise<TurnResult>;
  private readonly events: LoggedEvent[] = [];
  /** Where each running iteration is: events it has read are not merged any more. */
  private readonly cursors = new Set<{ next: number }>();
  private failure: AgentwireError | null = null;
  private finished = false;
  private wake: (() => void) | null = null;
  private settle!: { resolve: (r: TurnResult) => void; reject: (e: AgentwireError) => void };
  private name!: (id: string) => void;
  private readonly named = new Promise<string>((resolve) => (this.name = resolve));

  constructor(
    private readonly owner: TurnOwner,
    /** The id of the client message that started it; undefined for a turn started elsewhere. */
    readonly messageId: string | undefined,
  ) {
    super();
    this.done = new Promise<TurnResult>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // A caller that never awaits `done` must not see an unhandled rejection.
    this.done.catch(() => {});
  }

  /** Cancels the turn (once the server has named it: never another turn); resolves when the server has taken the cancel. */
  async cancel(): Promise<void> {
    const id = this.id ?? (await Promise.race([this.named, this.done.then(() => null, () => null)]));
    if (id !== null && !this.finished) await this.owner.cancel(id);
  }

  get ended(): boolean {
    return this.finished;
  }

  /** True when this handle saw the turn's `turn_start`: it holds the turn from its beginning. */
  get fromStart(): boolean {
    return this.events[0]?.type === "turn_start";
  }

  /** @internal The server named the turn. */
  bind(id: string): void {
    if (this.id === null) this.name(id);
    this.id ??= id;
    if (this.status === "pending") this.status = "running";
  }

  /** @internal One logged event of this turn. */
  receive(event: LoggedEvent): void {
    if (this.finished) return;
    if (event.type === "turn_start") this.bind(event.turn);
    else if (event.type === "progress" && event.stage === "queued" && event.position !== undefined) {
      this.status = "queued";
      this.queuePosition = event.position;
    } else if (this.status === "queued" && event.type !== "turn_end") {
      // Anything the agent says means the turn left the queue and runs.
      this.status = "running";
      this.queuePosition = null;
    }
    this.keep(event);
    this.emit("event", event);
    if (event.type === "progress" && event.stage === "queued" && event.position !== undefined) {
      this.emit("queued", event.etaMs === undefined ? { position: event.position } : { position: event.position, etaMs: event.etaMs });
    }
    if (event.type === "token") {
      this.text += event.text;
      this.emit("text", event.text);
    } else if (event.type === "usage") {
      this.usage = { inputTokens: event.inputTokens, outputTokens: event.outputTokens };
    } else if (event.type === "turn_end") {
      this.finished = true;
      this.status = event.status;
      this.reason = event.reason;
      const result: TurnResult = { status: event.status, reason: event.reason, text: this.text, usage: this.usage };
      this.emit("end", result);
      this.settle.resolve(result);
    }
    this.wake?.();
  }

  /**
   * Keeps an event for iteration. A token that follows a token no iterator has read yet joins it, as the
   * server merges frames for a slow reader (`from..seq`): a long turn then holds a few strings, not one
   * object per token, and an iterator still sees every byte in order.
   */
  private keep(event: LoggedEvent): void {
    const last = this.events.length - 1;
    const prev = this.events[last];
    // A handle that joined mid-turn keeps each token as it came: a reader that starts from a snapshot skips by seq.
    if (event.type === "token" && prev?.type === "token" && prev.turn === event.turn && this.fromStart && !this.readBy(last)) {
      this.events[last] = { type: "token", seq: event.seq, turn: event.turn, text: prev.text + event.text, from: prev.from ?? prev.seq };
      return;
    }
    this.events.push(event);
  }

  /** @internal The input was refused: the turn never starts. */
  fail(error: AgentwireError): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.settle.reject(error);
    this.wake?.();
  }

  /** Iterates the turn's logged events from its first, ending after `turn_end`; throws if the input was refused. */
  async *[Symbol.asyncIterator](): AsyncIterator<LoggedEvent> {
    const cursor = { next: 0 };
    this.cursors.add(cursor);
    try {
      for (;;) {
        while (cursor.next < this.events.length) yield this.events[cursor.next++] as LoggedEvent;
        if (this.failure) throw this.failure;
        if (this.finished) return;
        await this.arrival();
      }
    } finally {
      this.cursors.delete(cursor);
    }
  }

  private arrival(): Promise<void> {
    return new Promise<void>((resolve) => {
      const previous = this.wake;
      this.wake = () => {
        this.wake = previous;
        previous?.();
        resolve();
      };
    });
  }

  private readBy(index: number): boolean {
    for (const cursor of this.cursors) if (cursor.next > index) return true;
    return false;
  }
}
