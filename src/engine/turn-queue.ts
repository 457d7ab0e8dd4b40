// The node's admission queue: turns over capacity wait here, served round-robin across identities.

/** A turn waiting for a slot, as the queue sees it. */
export interface QueuedTurn {
  readonly identity: string;
  /** Gets a slot: the turn runs now. */
  start(): void;
  /** Turns ahead of it changed (0: it starts now); `etaMs` when the queue can estimate. */
  moved(position: number, etaMs: number | undefined): void;
  /** It waited past the queue timeout, or the node drains: it ends without running. */
  expire(reason: "timeout" | "draining"): void;
}

export interface TurnQueueOptions {
  /** Turns running at once on this node. */
  capacity: number;
  /** Turns waiting at once; past it an input is refused `queue_full`. */
  maxQueued: number;
  /** Longest a turn waits (ms); then it fails `queue_timeout`. */
  timeoutMs: number;
  /** How often waiting turns hear their new position, at most (ms). */
  updateMs: number;
  now: () => number;
}

interface Waiting {
  turn: QueuedTurn;
  since: number;
  position: number;
}

/**
 * Capacity, running count and a fair queue. Each identity has its own FIFO; a freed slot goes to the next
 * identity in rotation, so one identity's burst waits behind everyone else's next turn, never in front of it.
 */
export class TurnQueue {
  private runningCount = 0;
  private waitingCount = 0;
  private readonly byIdentity = new Map<string, Waiting[]>();
  /** Identities with waiting turns, in rotation order; `next` indexes the one served next. */
  private order: string[] = [];
  private next = 0;
  private updateTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** A moving average of how long turns run (ms): the estimate's basis. 0 until a turn has ended. */
  private averageRunMs = 0;
  private idleWaiters: (() => void)[] = [];
  /** Set by close(): nothing starts any more (a closing node's turns are being cancelled). */
  private closed = false;

  constructor(private readonly options: TurnQueueOptions) {}

  get running(): number {
    return this.runningCount;
  }

  get queued(): number {
    return this.waitingCount;
  }

  /** Starts the turn now if a slot is free, else queues it. `full`: neither (nothing changed). */
  request(turn: QueuedTurn): "started" | "queued" | "full" {
    if (this.runningCount < this.options.capacity && this.waitingCount === 0) {
      this.runningCount++;
      turn.start();
      return "started";
    }
    if (this.waitingCount >= this.options.maxQueued) return "full";
    let fifo = this.byIdentity.get(turn.identity);
    if (!fifo) {
      fifo = [];
      this.byIdentity.set(turn.identity, fifo);
      this.order.push(turn.identity);
    }
    const entry: Waiting = { turn, since: this.options.now(), position: -1 };
    fifo.push(entry);
    this.waitingCount++;
    // The newcomer hears its place at once; the turns it now stands ahead of hear theirs at the next update.
    entry.position = this.positionOf(turn.identity, fifo.length - 1);
    turn.moved(entry.position, this.etaMs(entry.position));
    this.scheduleUpdate();
    this.armSweep();
    return "queued";
  }

  /** Whether `request` would take a turn now (start it or queue it). */
  canAccept(): boolean {
    return (this.runningCount < this.options.capacity && this.waitingCount === 0) || this.waitingCount < this.options.maxQueued;
  }

  /** How long a refused client should wait before it tries again (ms). */
  retryAfterMs(): number {
    return Math.max(1000, Math.round(this.averageRunMs || 1000));
  }

  /** Takes a waiting turn out (it was cancelled). False when it was not waiting. */
  remove(turn: QueuedTurn): boolean {
    const fifo = this.byIdentity.get(turn.identity);
    const at = fifo?.findIndex((w) => w.turn === turn) ?? -1;
    if (!fifo || at < 0) return false;
    fifo.splice(at, 1);
    this.waitingCount--;
    if (fifo.length === 0) this.dropIdentity(turn.identity);
    this.scheduleUpdate();
    return true;
  }

  /** A running turn ended after `ranMs`: its slot goes to the next waiting turn. */
  finished(ranMs: number): void {
    this.runningCount--;
    this.averageRunMs = this.averageRunMs === 0 ? ranMs : this.averageRunMs * 0.8 + ranMs * 0.2;
    this.fill();
    if (this.runningCount === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Resolves once no turn runs here. */
  whenIdle(): Promise<void> {
    if (this.runningCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Ends every waiting turn (`expire("draining")`): a node that shuts down starts none of them. */
  drain(): void {
    const all = [...this.byIdentity.values()].flat();
    this.byIdentity.clear();
    this.order = [];
    this.next = 0;
    this.waitingCount = 0;
    for (const w of all) w.turn.expire("draining");
  }

  close(): void {
    this.closed = true;
    if (this.updateTimer) clearTimeout(this.updateTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.updateTimer = null;
    this.sweepTimer = null;
  }

  private fill(): void {
    if (this.closed) return;
    let started = false;
    while (this.runningCount < this.options.capacity && this.waitingCount > 0) {
      const entry = this.dequeue();
      this.runningCount++;
      started = true;
      // Position 0 means "next": it may have been told so while every slot was still busy.
      if (entry.position !== 0) entry.turn.moved(0, 0);
      entry.turn.start();
    }
    if (started) this.scheduleUpdate();
  }

  private dequeue(): Waiting {
    const identity = this.order[this.next] as string;
    const fifo = this.byIdentity.get(identity) as Waiting[];
    const entry = fifo.shift() as Waiting;
    this.waitingCount--;
    if (fifo.length === 0) this.dropIdentity(identity);
    else this.next = (this.next + 1) % this.order.length;
    return entry;
  }

  private dropIdentity(identity: string): void {
    this.byIdentity.delete(identity);
    const at = this.order.indexOf(identity);
    this.order.splice(at, 1);
    if (at < this.next) this.next--;
    if (this.next >= this.order.length) this.next = 0;
  }

  private scheduleUpdate(): void {
    if (this.updateTimer || this.waitingCount === 0) return;
    this.updateTimer = setTimeout(() => {
      this.updateTimer = null;
      this.refresh();
    }, this.options.updateMs);
    this.updateTimer.unref();
  }

  /** Where the `k`-th waiting turn of `identity` stands: turns the rotation serves before it, counted without walking the queue. */
  private positionOf(identity: string, k: number): number {
    const rotation = (at: number) => (at - this.next + this.order.length) % this.order.length;
    const mine = rotation(this.order.indexOf(identity));
    let ahead = k;
    this.order.forEach((other, at) => {
      if (other === identity) return;
      const length = (this.byIdentity.get(other) as Waiting[]).length;
      ahead += Math.min(length, k + (rotation(at) < mine ? 1 : 0));
    });
    return ahead;
  }

  private etaMs(position: number): number | undefined {
    return this.averageRunMs > 0 ? Math.round(((position + 1) * this.averageRunMs) / this.options.capacity) : undefined;
  }

  /**
   * Tells each waiting turn whose position changed where it stands: the order the rotation would serve them
   * in (round r serves the r-th turn of every identity, starting from the next one), in one pass.
   */
  private refresh(): void {
    let position = 0;
    const queues = [...this.order.slice(this.next), ...this.order.slice(0, this.next)].map((id) => this.byIdentity.get(id) as Waiting[]);
    for (let round = 0, live = queues; live.length > 0; round++) {
      const rest: Waiting[][] = [];
      for (const fifo of live) {
        const entry = fifo[round] as Waiting;
        if (entry.position !== position) {
          entry.position = position;
          entry.turn.moved(position, this.etaMs(position));
        }
        position++;
        if (fifo.length > round + 1) rest.push(fifo);
      }
      live = rest;
    }
  }

  /** Expires turns that waited too long; runs only while something waits. */
  private armSweep(): void {
    if (this.sweepTimer) return;
    const every = Math.max(10, Math.min(1000, Math.floor(this.options.timeoutMs / 4)));
    this.sweepTimer = setInterval(() => {
      const deadline = this.options.now() - this.options.timeoutMs;
      for (const fifo of [...this.byIdentity.values()]) {
        for (const w of fifo.filter((x) => x.since <= deadline)) {
          this.remove(w.turn);
          w.turn.expire("timeout");
        }
      }
      if (this.waitingCount === 0 && this.sweepTimer) {
        clearInterval(this.sweepTimer);
        this.sweepTimer = null;
      }
    }, every);
    this.sweepTimer.unref();
  }
}
