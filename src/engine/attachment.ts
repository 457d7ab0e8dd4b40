// One client attached to a session through a transport: welcome, replay, live events, replies.
import {
  type ClientMessage,
  ErrorCode,
  type ErrorEvent,
  type ParseFailure,
  type ServerMessage,
  type SessionEvent,
  PROTOCOL_VERSION,
} from "@agentwire/protocol";
import type { LogEntry } from "./event-log.js";
import { Outbox, type OutboxLimits } from "./outbox.js";
import { ByteBudget } from "./rate.js";
import type { AttachedSession, SubmitError, SubmitOutcome } from "./session-types.js";
import type { Sink } from "./sink.js";
import { type EngineTelemetry, NO_TELEMETRY } from "./telemetry.js";

/** Log entries written per replay batch; replay reads the log in place, so it costs no copy per client. */
const REPLAY_BATCH = 256;

export interface AttachmentOptions {
  outbox: OutboxLimits;
  /** Announced in the welcome. */
  heartbeatMs: number;
  /** Bytes of log a connection may have replayed in a burst, refilled at a tenth of it per second. */
  replayBytes: number;
  /** Counts client messages, errors answered and resumes. @default none */
  telemetry?: EngineTelemetry;
}

export class Attachment {
  private readonly outbox: Outbox;
  private detached = false;
  /** While replaying: the last seq written from the log. Live events wait in the log until the cursor reaches them. */
  private cursor: number | null = null;
  /** Made with the first `resume` frame: replays asked for on an open link are rare. */
  private replayBudget: ByteBudget | null = null;
  private readonly telemetry: EngineTelemetry;

  constructor(
    readonly session: AttachedSession<Attachment>,
    private readonly sink: Sink,
    private readonly options: AttachmentOptions,
  ) {
    this.outbox = new Outbox(sink, options.outbox);
    this.telemetry = options.telemetry ?? NO_TELEMETRY;
  }

  /** Sends the welcome, replays after `afterSeq` (when given), and joins the live stream. */
  start(afterSeq: number | undefined): void {
    this.session.addAttachment(this);
    this.replay(afterSeq);
  }

  /** Live delivery of one logged event. */
  deliver(entry: LogEntry): void {
    if (this.cursor !== null) this.pump();
    else this.outbox.push(entry.frame, entry);
  }

  /** Handles one parsed client message. */
  receive(message: ClientMessage): void {
    this.telemetry.clientMessage(message.type);
    if (message.type === "resume") {
      this.resume(message.afterSeq, message.id);
      return;
    }
    const id = message.id;
    let acked = false;
    // A turn's ack goes out before its turn_start, so a client sees its message taken first.
    const onTurn = id
      ? (turn: string) => {
          acked = true;
          this.send({ type: "ack", id, turn });
        }
      : undefined;
    const outcome = this.session.submit(message, onTurn);
    if (outcome instanceof Promise) {
      // Forwarded to the owner on another node: its ack may follow the turn's first events.
      void outcome.then(
        (o) => {
          if (!this.detached) this.answer(o, id, false);
        },
        // A bug on the forwarding path answers this message; it must not take the process down.
        () => {
          if (!this.detached) this.sendError({ code: ErrorCode.Internal, message: "the server failed to take this message", retryable: true, retryAfterMs: 1000 }, id);
        },
      );
      return;
    }
    this.answer(outcome, id, acked);
  }

  /** `acked`: the turn's ack went out already. A resent message (`duplicate`) gets the ack it got the first time. */
  private answer(outcome: SubmitOutcome, id: string | undefined, acked: boolean): void {
    if (!outcome.ok) {
      this.sendError(outcome.error, id);
      return;
    }
    if (outcome.reply) this.send(outcome.reply);
    else if (id && !acked) this.send(outcome.turn ? { type: "ack", id, turn: outcome.turn } : { type: "ack", id });
  }

  /** Reports a frame the transport could not parse; the connection stays. */
  rejectFrame(failure: ParseFailure): void {
    const event: ErrorEvent = { type: "error", code: failure.code, message: failure.message, retryable: false, field: failure.field, id: failure.id };
    this.telemetry.clientError(failure.code);
    this.send(event);
  }

  sendError(error: SubmitError, id: string | undefined): void {
    const { code, message, retryable, retryAfterMs, field, limit } = error;
    this.telemetry.clientError(code);
    this.send({ type: "error", code, message, retryable, retryAfterMs, field, limit, id });
  }

  /** Ephemeral frames (ack, pong, error, drain) share the outbox so ordering holds. */
  send(message: ServerMessage): void {
    this.outbox.push(JSON.stringify(message), null);
  }

  /** The transport's socket drained: write what is queued, then continue any replay. */
  drained(): void {
    this.outbox.flush();
    if (this.cursor !== null) this.pump();
  }

  get pendingBytes(): number {
    return this.outbox.pendingBytes;
  }

  get mergedFrames(): number {
    return this.outbox.merged;
  }

  get peakBytes(): number {
    return this.outbox.peakBytes;
  }

  /** The transport lost the link: forget it. Idempotent. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.outbox.close();
    this.session.removeAttachment(this);
    this.session.touch();
  }

  /** Closes the link from the server side. */
  close(code: number, reason: string): void {
    this.detach();
    this.sink.close(code, reason);
  }

  /**
   * A `resume` frame: counted like any client message, and the bytes it would replay against this
   * link's replay budget, so a flood of resumes cannot make the node send the log again and again.
   */
  private resume(afterSeq: number, id: string | undefined): void {
    const waitMs = this.session.takeMessage();
    if (waitMs > 0) {
      this.sendError({ code: ErrorCode.RateLimited, message: "too many messages for this session", retryable: true, retryAfterMs: waitMs }, id);
      return;
    }
    const { replayBytes } = this.options;
    this.replayBudget ??= new ByteBudget(replayBytes, replayBytes / 10, this.session.now);
    const replayWait = this.replayBudget.take(this.session.log.bytesAfter(afterSeq));
    if (replayWait > 0) {
      this.sendError({ code: ErrorCode.RateLimited, message: "this link replayed too much of the log: resume later", retryable: true, retryAfterMs: replayWait, field: "afterSeq" }, id);
      return;
    }
    // Frames queued for the old position would arrive twice: start over from the client's position.
    this.outbox.reset();
    this.replay(afterSeq);
  }

  private replay(afterSeq: number | undefined): void {
    const log = this.session.log;
    const replay = afterSeq === undefined ? { recovered: true } : log.after(afterSeq, 0);
    const welcome: SessionEvent = {
      type: "session",
      sessionId: this.session.id,
      protocol: PROTOCOL_VERSION,
      lastSeq: log.lastSeq,
      resumed: afterSeq !== undefined,
      recovered: replay.recovered,
      activeTurn: this.session.activeTurnId,
      heartbeatMs: this.options.heartbeatMs,
    };
    this.send(welcome);
    if (afterSeq !== undefined) this.telemetry.resumed(replay.recovered);
    if (afterSeq === undefined || !replay.recovered) {
      this.cursor = null;
      return;
    }
    this.cursor = afterSeq;
    this.pump();
  }

  /** Writes log entries after the cursor while the socket takes them; switches to live once caught up. */
  private pump(): void {
    const log = this.session.log;
    while (this.cursor !== null && this.outbox.writable) {
      const batch = log.after(this.cursor, REPLAY_BATCH);
      if (!batch.recovered) {
        // The client read so slowly that the log dropped what it had not read yet.
        this.cursor = null;
        this.outbox.closeSlow();
        return;
      }
      if (batch.entries.length === 0) {
        this.cursor = null;
        return;
      }
      this.outbox.writeBatch(batch.entries.map((e) => e.frame));
      this.telemetry.replayed(batch.entries.length);
      this.cursor = (batch.entries[batch.entries.length - 1] as LogEntry).seq;
    }
    // Stopped with more to replay: the socket is full, and a reader that never drains it must not hold the link forever.
    if (this.cursor !== null) this.outbox.watchLag();
  }
}
