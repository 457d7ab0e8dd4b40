// Keeps the broker's copy of an owned session current: its log in order (batching deltas, surviving
// outages) and its state after each turn. It is the session's OwnerHooks.
import { backoffMs } from "../backoff.js";
import type { Broker, LogLimits, StoredEvent } from "../broker/broker.js";
import type { LogEntry } from "./event-log.js";
import type { Logger } from "../logger.js";
import type { OwnerHooks, Session } from "./session.js";
import type { EngineTelemetry } from "./telemetry.js";

export interface PersisterOptions {
  /** How long a token delta may wait to share a round trip with later ones (ms). */
  batchMs: number;
  limits: LogLimits;
  /** Time to live of the stored session record (ms). */
  metaTtlMs: number;
  logger: Logger;
  /** Times each append. @default none */
  telemetry?: EngineTelemetry;
  /** The broker says another node holds the lease. */
  onNotOwner(session: Session): void;
}

const MAX_BATCH = 512;

/** The stored form of a session: what another node needs to authorize and take it over. */
export function sessionRecord(session: Session) {
  return { sessionId: session.id, token: session.token, createdAt: Date.now(), state: JSON.stringify(session.state()) };
}

export class LogPersister implements OwnerHooks {
  private persisted: number;
  private inflight = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  /** Appends failed in a row (the backoff's attempt). */
  private failures = 0;
  private lastTokenTurn: string | null = null;
  /** Set when the local log lost entries the broker never got: the next append skips ahead. */
  private force = false;
  private saving = false;
  private saveAgain = false;
  /** A flush is already queued as a microtask: one is enough for any number of events. */
  private flushQueued = false;
  /** Waiting for everything logged so far, and the latest state, to be stored. */
  private storedWaiters: (() => void)[] = [];

  constructor(
    private readonly session: Session,
    private readonly broker: Broker,
    private readonly options: PersisterOptions,
    persistedSeq: number,
  ) {
    this.persisted = persistedSeq;
    session.log.pin(persistedSeq);
  }

  get persistedSeq(): number {
    return this.persisted;
  }

  /** Resolves once every event logged so far and the latest state are stored, or persisting stopped. */
  whenStored(): Promise<void> {
    if (this.isStored()) return Promise.resolve();
    return new Promise((resolve) => this.storedWaiters.push(resolve));
  }

  private isStored(): boolean {
    return this.stopped || (this.persisted >= this.session.log.lastSeq && !this.saving && !this.saveAgain);
  }

  private wakeIfStored(): void {
    if (this.storedWaiters.length === 0 || !this.isStored()) return;
    for (const wake of this.storedWaiters.splice(0)) wake();
  }

  /** A new local event. The first token of a turn and every non-token event go out at once. */
  logged(entry: LogEntry): void {
    const urgent = entry.type !== "token" || entry.turn !== this.lastTokenTurn;
    if (entry.type === "token") this.lastTokenTurn = entry.turn ?? null;
    // An append in flight takes everything logged meanwhile when it completes: nothing to schedule.
    if (this.inflight || this.flushQueued) return;
    if (urgent || this.options.batchMs === 0) this.schedule(0);
    else if (!this.timer) this.schedule(this.options.batchMs);
  }

  /** Configuration or history changed: store the session state; one save at a time, the latest wins. */
  changed(): void {
    if (this.stopped) return;
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    let record: ReturnType<typeof sessionRecord>;
    try {
      record = sessionRecord(this.session);
    } catch (err) {
      // Client data is bounded at parse time, so this is a bug; the stored copy stays as it was.
      this.options.logger.error({ sessionId: this.session.id, err: (err as Error).message }, "session state cannot be serialized; not saved");
      return;
    }
    this.saving = true;
    this.broker.saveSession(record, this.options.metaTtlMs).then(
      () => this.savedState(),
      (err: Error) => {
        this.options.logger.debug({ sessionId: this.session.id, err: err.message }, "session state not saved");
        this.savedState();
      },
    );
  }

  private savedState(): void {
    this.saving = false;
    if (this.saveAgain) {
      this.saveAgain = false;
      this.changed();
    }
    this.wakeIfStored();
  }

  stop(): void {
    this.stopped = true;
    this.wakeIfStored();
    this.session.log.pin(Number.POSITIVE_INFINITY);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** After a broker outage or a regained lease: find where the broker is and resend from there. */
  resync(storedLastSeq: number): void {
    this.stopped = false;
    this.persisted = Math.min(this.persisted, storedLastSeq);
    this.session.log.pin(this.persisted);
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (delayMs === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      if (this.flushQueued) return;
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flush();
      });
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, delayMs);
  }

  private flush(): void {
    if (this.inflight || this.stopped) return;
    const log = this.session.log;
    let batch = log.after(this.persisted, MAX_BATCH);
    if (!batch.recovered && this.persisted < log.lastSeq) {
      // The local log dropped events the broker never got (a long outage): skip ahead, flagged.
      batch = log.after(log.firstSeq - 1, MAX_BATCH);
      this.force = true;
    }
    if (!batch.recovered || batch.entries.length === 0) return;
    // A log entry already has the shape of a stored event (seq, frame): no copy per token.
    const events: readonly StoredEvent[] = batch.entries;
    const last = (events[events.length - 1] as StoredEvent).seq;
    this.inflight = true;
    const started = performance.now();
    this.broker.append(this.session.id, events, this.options.limits, this.force).then(
      (result) => {
        this.options.telemetry?.brokerAppend(performance.now() - started, true);
        this.inflight = false;
        this.failures = 0;
        if (result.ok) {
          this.persisted = last;
          log.pin(last);
          this.force = false;
          // Natural batching: whatever arrived while this round trip ran goes in the next one.
          if (log.lastSeq > this.persisted) this.flush();
          else this.wakeIfStored();
        } else if (result.reason === "not_owner") {
          this.stop();
          this.options.onNotOwner(this.session);
        } else {
          this.persisted = result.lastSeq;
          log.pin(this.persisted);
          this.flush();
        }
      },
      (err: Error) => {
        this.options.telemetry?.brokerAppend(performance.now() - started, false);
        this.inflight = false;
        const retryMs = backoffMs(++this.failures, 100, 5000);
        this.options.logger.debug({ sessionId: this.session.id, err: err.message, retryMs }, "log append failed; retrying");
        this.schedule(retryMs);
      },
    );
  }
}
