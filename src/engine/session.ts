// A session: its log, history, configuration, pending input, running turn, and attached clients.
import {
  type ClientMessage,
  type ConfigureMessage,
  ErrorCode,
  jsonChars,
  type InputMessage,
  type LoggedEvent,
  type LoggedEventInput,
  type ToolDeclaration,
} from "@agentwire/protocol";
import type { HistoryMessage } from "./agent.js";
import type { Attachment } from "./attachment.js";
import { type EngineContext, modelAllowed } from "./context.js";
import { frozenEmpty } from "./empty.js";
import { EventLog, type LogEntry } from "./event-log.js";
import { ID_CONFLICT, MessageIds, fingerprint } from "./message-ids.js";
import { TokenBucket } from "./rate.js";
import { ANONYMOUS, GRANTED, type Principal, type QuotaAnswer, type QuotaRequest, type QuotaStore, QUOTA_STORE_UNAVAILABLE, isUnlimited, quotaError } from "./quota.js";
import type { QueuedTurn } from "./turn-queue.js";
import { trimHistory } from "./history.js";
import { type AttachedSession, type OwnerHooks, type OwnerLink, type SessionSnapshot, type SessionState, type SubmitOutcome, refuse } from "./session-types.js";
import { Turn, type TurnRecord } from "./turn.js";
import type { TurnReport } from "./telemetry.js";

export type { OwnerHooks, OwnerLink, SessionSnapshot, SessionState, SubmitError, SubmitOutcome } from "./session-types.js";

/** Shared empty defaults: an idle session owns no arrays of its own. */
const NO_ATTACHMENTS: readonly Attachment[] = frozenEmpty<Attachment>();
const NO_TOOLS = frozenEmpty<ToolDeclaration>();

export class Session implements AttachedSession<Attachment> {
  readonly log: EventLog;
  /** Replaced, never mutated: delivery can iterate it while an attachment leaves. */
  attachments: readonly Attachment[] = NO_ATTACHMENTS;
  readonly history: HistoryMessage[] = [];
  lastActivity: number;
  activeTurn: Turn | null = null;
  private pending = "";
  private model: string | undefined;
  private system: string | undefined;
  private clientTools: ToolDeclaration[] = NO_TOOLS;
  /** Recent turn records for polling; created with the first turn (most sessions idle cost nothing). */
  private turns: Map<string, TurnRecord> | null = null;
  private turnCounter = 0;
  /** Made with the first message: most sessions at rest never need one. */
  private inputRate: TokenBucket | null = null;
  /** Created with the first message that carries an id: an idle session holds none. */
  private messageIds: MessageIds | null = null;
  private ended = false;
  /**
   * `owner`: this node runs the session's turns and assigns seq. `replica`: another node owns it;
   * this copy follows the owner's log for local clients and forwards their messages.
   */
  role: "owner" | "replica" = "owner";
  ownerLink: OwnerLink | null = null;
  hooks: OwnerHooks | null = null;
  /** The running turn as seen in a replica's log. */
  private replicaTurn: string | null = null;
  /** Whether this node counts the session in its principal's `sessions` quota (it owns it). */
  private countedSession = false;
  /** The turn counted in the principal's `turns` quota, released when it ends. */
  private heldTurn: Turn | null = null;
  /** A message waiting on the quota store: later messages wait behind it, so they apply in order. */
  private busy: Promise<unknown> | null = null;

  constructor(
    readonly id: string,
    readonly token: string,
    private readonly ctx: EngineContext,
    /** Who the session acts for, and the policy signed for it. Fixed for the session's life, on every node. */
    readonly principal: Principal = ANONYMOUS,
  ) {
    this.log = new EventLog(ctx.logLimits, ctx.now);
    this.lastActivity = ctx.now();
    this.quotas = isUnlimited(principal.limits) ? null : ctx.quotas;
  }

  /** Null when the principal has no limit: nothing of this session is counted anywhere. */
  readonly quotas: QuotaStore | null;

  /** The session was counted in its principal's `sessions` quota when it was created here. */
  countAsCreated(): void {
    this.countedSession = true;
  }

  private uncount(): void {
    if (!this.countedSession) return;
    this.countedSession = false;
    this.quotas?.release(this.principal.identity, "sessions");
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The running turn's id, on the owner or as a replica last saw it. */
  get activeTurnId(): string | null {
    return this.role === "owner" ? (this.activeTurn?.id ?? null) : this.replicaTurn;
  }

  /** Owner only: assigns the next seq, logs the event and fans it out to every attached client. */
  emit(event: LoggedEventInput): void {
    this.publish(this.log.append(event));
  }

  /** Owner only: `emit` for a text delta, without building the event object twice. */
  emitToken(turn: string, text: string): void {
    this.publish(this.log.appendToken(turn, text));
  }

  addAttachment(attachment: Attachment): void {
    // concat sizes the array exactly; a spread or push would reserve room for 16 more.
    this.attachments = this.attachments.concat(attachment);
  }

  removeAttachment(attachment: Attachment): void {
    const rest = this.attachments.filter((a) => a !== attachment);
    this.attachments = rest.length > 0 ? rest : NO_ATTACHMENTS;
  }

  private publish(entry: LogEntry): void {
    this.hooks?.logged(entry);
    deliver(this.attachments, entry);
  }

  /**
   * Replica only: takes events in the owner's order. Returns the seq it expected when `seq` skips
   * ahead (the caller fills the gap from the stored log, then calls again), else null.
   */
  ingest(seq: number, frame: string): number | null {
    if (seq <= this.log.lastSeq && this.log.size > 0) return null;
    const event = JSON.parse(frame) as LoggedEvent;
    const entry = this.log.insert(seq, frame, event);
    if (!entry) return this.log.lastSeq + 1;
    if (event.type === "turn_start") this.replicaTurn = event.turn;
    else if (event.type === "turn_end" && this.replicaTurn === event.turn) this.replicaTurn = null;
    deliver(this.attachments, entry);
    return null;
  }

  /** The state another node needs to take this session over. */
  state(): SessionState {
    const state: SessionState = { model: this.model, system: this.system, clientTools: this.clientTools, history: this.history, turnCounter: this.turnCounter };
    if (this.messageIds && this.messageIds.size > 0) state.messageIds = this.messageIds.entries();
    if (this.activeTurn) state.activeTurn = { id: this.activeTurn.id, input: this.activeTurn.record.input };
    if (this.principal !== ANONYMOUS) state.principal = this.principal;
    return state;
  }

  /**
   * Makes this node the owner, from the persisted state and the log it holds. A turn that was
   * running on the lost owner is closed with `owner_lost`: nobody can finish it.
   */
  promote(state: SessionState | null): void {
    if (state) {
      this.model = state.model;
      this.system = state.system;
      this.clientTools = state.clientTools;
      this.history.splice(0, this.history.length, ...state.history);
      this.turnCounter = Math.max(this.turnCounter, state.turnCounter);
      if (state.messageIds) this.messageIds = MessageIds.restore(state.messageIds, this.ctx.limits.messageIdWindow);
    }
    // A turn running when the state was saved is known from it, even once its turn_start has left the log.
    let orphan: string | null = state?.activeTurn?.id ?? null;
    let orphanText = "";
    let orphanInput = state?.activeTurn?.input ?? "";
    if (orphan) this.turnCounter = Math.max(this.turnCounter, Number(orphan.slice(1)) || 0);
    for (const { event } of this.log.after(this.log.firstSeq - 1).entries) {
      if (event.type === "turn_start") {
        // The input that started a turn is in the log before any state is saved: a resend of it
        // to this node must find it too.
        if (event.id) this.ids().learn(event.id, event.turn);
        orphan = event.turn;
        orphanText = "";
        orphanInput = event.input;
        this.turnCounter = Math.max(this.turnCounter, Number(event.turn.slice(1)) || 0);
      } else if (event.type === "turn_end" && event.turn === orphan) orphan = null;
      else if (event.type === "token" && event.turn === orphan) orphanText += event.text;
    }
    this.role = "owner";
    this.ownerLink = null;
    this.replicaTurn = null;
    if (!this.countedSession && this.quotas) {
      this.quotas.adopt(this.principal.identity, "sessions");
      this.countedSession = true;
    }
    if (orphan) {
      // State is saved when turns end, so the lost turn's question is usually known from its
      // turn_start only (unless a configure during the turn saved it already).
      const last = this.history[this.history.length - 1];
      if (!(last?.role === "user" && last.text === orphanInput)) this.history.push({ role: "user", text: orphanInput });
      if (orphanText) this.history.push({ role: "assistant", text: orphanText });
      const message = "the node running this turn went away";
      this.emit({ type: "error", turn: orphan, code: ErrorCode.OwnerLost, message, retryable: true });
      this.emit({ type: "usage", turn: orphan, inputTokens: 0, outputTokens: 0, partial: true });
      this.emit({ type: "turn_end", turn: orphan, status: "failed", reason: ErrorCode.OwnerLost });
      // Counted as a turn that ended here, with its own hook: how it ran on the lost owner is unknown (no timings, no usage).
      this.ctx.telemetry.ownerLostTurn();
      this.ctx.logger.info({ sessionId: this.id, turn: orphan, identity: this.principal.identity, status: "failed", reason: ErrorCode.OwnerLost, model: this.effectiveModel }, "turn ended");
    }
  }

  /** Steps down to replica: another node holds the lease now. Running work stops. */
  demote(link: OwnerLink): void {
    this.activeTurn?.cancel("session_ended");
    this.activeTurn = null;
    this.uncount();
    this.role = "replica";
    this.ownerLink = link;
    this.hooks = null;
  }

  touch(): void {
    this.lastActivity = this.ctx.now();
  }

  /** The session's clock (the engine's). */
  get now(): () => number {
    return this.ctx.now;
  }

  /** Counts one client message against the session's rate: 0 when allowed, else the ms to wait. */
  takeMessage(): number {
    const { limits } = this.ctx;
    this.inputRate ??= new TokenBucket(limits.inputRatePerSec, limits.inputBurst, this.ctx.now);
    return this.inputRate.take();
  }

  /**
   * Applies one client message (`resume` is the attachment's business). `onTurn` runs with the new
   * turn's id just before its first event, so an acknowledgement can precede `turn_start`.
   */
  submit(message: ClientMessage, onTurn?: (turnId: string) => void): SubmitOutcome | Promise<SubmitOutcome> {
    if (this.busy) return this.busy.then(() => this.submit(message, onTurn));
    if (this.ended) return refuse(ErrorCode.SessionNotFound, "the session has ended");
    this.lastActivity = this.ctx.now();
    if (this.role === "replica" && this.ownerLink) return this.ownerLink.submit(message);
    const waitMs = this.takeMessage();
    if (waitMs > 0) {
      return refuse(ErrorCode.RateLimited, "too many messages for this session", { retryable: true, retryAfterMs: waitMs });
    }
    const id = message.type === "ping" || message.type === "resume" ? undefined : message.id;
    if (id === undefined || this.ctx.limits.messageIdWindow === 0) return this.apply(message, onTurn);
    const print = fingerprint(message);
    const taken = this.ids().find(id, print);
    if (taken === ID_CONFLICT) return refuse(ErrorCode.InvalidMessage, `message id "${id}" was already used for a different message`, { field: "id" });
    // Taken before: answer as the first time (the same turn), change nothing.
    if (taken) return { ok: true, turn: taken.turn, duplicate: true };
    // Remembered before it applies, so a state saved while it applies (configure) holds the id.
    this.ids().remember(id, print);
    const settle = (outcome: SubmitOutcome): SubmitOutcome => {
      if (outcome.ok) this.ids().settle(id, outcome.turn);
      else this.ids().forget(id);
      return outcome;
    };
    const outcome = this.apply(message, onTurn);
    return outcome instanceof Promise ? outcome.then(settle) : settle(outcome);
  }

  private ids(): MessageIds {
    return (this.messageIds ??= new MessageIds(this.ctx.limits.messageIdWindow));
  }

  private apply(message: ClientMessage, onTurn?: (turnId: string) => void): SubmitOutcome | Promise<SubmitOutcome> {
    switch (message.type) {
      case "input":
        return this.input(message, onTurn);
      case "cancel":
        if (this.activeTurn && (!message.turn || message.turn === this.activeTurn.id)) this.activeTurn.cancel("cancelled");
        return { ok: true };
      case "tool_result":
        if (!this.activeTurn?.resolveClientTool(message.callId, message.output, message.isError)) {
          return refuse(ErrorCode.ToolCallNotFound, `no tool call "${message.callId}" is waiting for a result`, { field: "callId" });
        }
        return { ok: true };
      case "configure":
        return this.configure(message);
      case "ping":
        return { ok: true, reply: { type: "pong", id: message.id, time: Date.now() } };
      case "resume":
        return refuse(ErrorCode.InvalidMessage, "resume is only meaningful on a stream connection", { field: "type" });
    }
  }

  private input(message: InputMessage, onTurn?: (turnId: string) => void): SubmitOutcome | Promise<SubmitOutcome> {
    const { limits } = this.ctx;
    // Before anything changes: a shutting-down node neither starts a turn nor buffers input it
    // would lose; the client sends it again, to the next owner.
    const draining = this.ctx.draining();
    if (draining) {
      return refuse(ErrorCode.ServerDraining, "the server is shutting down: send this again shortly", { retryable: true, retryAfterMs: draining.retryAfterMs });
    }
    const text = this.pending + message.text;
    if (text.length > limits.maxInputChars) {
      return refuse(ErrorCode.InputTooLarge, `input exceeds ${limits.maxInputChars} characters`, { field: "text" });
    }
    if (message.final && text.trim().length === 0) return refuse(ErrorCode.InvalidMessage, "input text is empty", { field: "text" });
    if (!message.final) {
      // Only an input that will be taken interrupts: a refused one changes nothing, the running turn included.
      if (message.interrupt && this.activeTurn) this.activeTurn.cancel("interrupted");
      this.pending = text;
      return { ok: true };
    }
    if (this.activeTurn && !message.interrupt) {
      return refuse(ErrorCode.TurnActive, `turn ${this.activeTurn.id} is running: cancel it, or send input with interrupt: true`, {
        retryable: true,
        field: "interrupt",
      });
    }
    if (this.ctx.memory.overloaded) {
      return refuse(ErrorCode.Overloaded, "the server is at its memory budget: retry shortly", { retryable: true, retryAfterMs: OVERLOADED_RETRY_MS });
    }
    // An input that interrupts a queued turn takes its place: the queue has room for it.
    if (!this.ctx.queue.canAccept() && this.activeTurn?.record.status !== "queued") {
      this.ctx.telemetry.queueFull();
      return refuse(ErrorCode.QueueFull, "the server's admission queue is full", { retryable: true, retryAfterMs: this.ctx.queue.retryAfterMs() });
    }
    // A turn that interrupts another takes over its place in the `turns` quota; any other needs one of its own.
    const interrupting = this.activeTurn !== null;
    const { limits: quota, identity } = this.principal;
    const request: QuotaRequest = {
      hold: interrupting ? undefined : { kind: "turns", limit: quota.turns },
      check: [
        { kind: "tokens_per_minute", limit: quota.tokens_per_minute },
        { kind: "tokens_per_day", limit: quota.tokens_per_day },
      ],
    };
    const answer = this.quotas ? this.quotas.admit(identity, request, this.ctx.now()) : GRANTED;
    const admitted = (a: QuotaAnswer): SubmitOutcome => {
      if (!a.ok) {
        this.ctx.telemetry.quotaRefused(a.limit);
        return { ok: false, error: quotaError(a) };
      }
      if (this.ended || (this.activeTurn && !interrupting)) {
        if (!interrupting) this.quotas?.release(identity, "turns");
        return this.ended ? refuse(ErrorCode.SessionNotFound, "the session has ended") : refuse(ErrorCode.TurnActive, "another turn started first", { retryable: true, field: "interrupt" });
      }
      if (interrupting) {
        // The interrupted turn's place in the quota passes to the new one (taken anew if it held none, or ended meanwhile).
        const transferred = this.activeTurn !== null && this.heldTurn === this.activeTurn;
        this.heldTurn = null;
        this.activeTurn?.cancel("interrupted");
        if (!transferred) this.quotas?.adopt(identity, "turns");
      }
      this.pending = "";
      return { ok: true, turn: this.startTurn(text, message.id, onTurn) };
    };
    if (!(answer instanceof Promise)) return admitted(answer);
    // Later messages of this session wait for this one: a cancel must find the turn it meant.
    const outcome = answer.then(admitted, (): SubmitOutcome => ({ ok: false, error: QUOTA_STORE_UNAVAILABLE }));
    const busy = outcome.finally(() => {
      if (this.busy === busy) this.busy = null;
    });
    this.busy = busy;
    return outcome;
  }

  private configure(message: ConfigureMessage): SubmitOutcome {
    const { limits, policy } = this.ctx;
    const pinned = this.principal.model;
    if (message.model !== undefined && pinned !== undefined && message.model !== pinned) {
      return refuse(ErrorCode.Forbidden, "this session's model is fixed by its credentials", { field: "model" });
    }
    if (message.model !== undefined && !modelAllowed(policy.allowedModels, message.model)) {
      return refuse(ErrorCode.Forbidden, `model "${message.model}" is not one the operator allows`, { field: "model" });
    }
    if (message.system !== undefined && !policy.clientSystem) {
      return refuse(ErrorCode.Forbidden, "the operator does not take system prompts from clients", { field: "system" });
    }
    const allowedTools = this.principal.tools;
    if (message.tools !== undefined && allowedTools) {
      const at = message.tools.findIndex((t) => !allowedTools.includes(t.name));
      if (at >= 0) return refuse(ErrorCode.Forbidden, `tool "${message.tools[at]?.name}" is not allowed for this session`, { field: `tools.${at}.name` });
    }
    // Checked before anything changes: a refused configure leaves the session as it was.
    if (message.system !== undefined && message.system.length > limits.maxSystemChars) {
      return refuse(ErrorCode.InputTooLarge, `the system prompt exceeds ${limits.maxSystemChars} characters`, { field: "system" });
    }
    if (message.tools !== undefined && jsonChars(message.tools) > limits.maxToolsChars) {
      return refuse(ErrorCode.InputTooLarge, `tool declarations exceed ${limits.maxToolsChars} characters as JSON`, { field: "tools" });
    }
    if (message.tools !== undefined) {
      const names = new Set<string>();
      for (const [i, tool] of message.tools.entries()) {
        if (names.has(tool.name) || this.ctx.tools.get(tool.name)) {
          return refuse(ErrorCode.InvalidMessage, `tool name "${tool.name}" is already taken`, { field: `tools.${i}.name` });
        }
        names.add(tool.name);
      }
    }
    if (message.model !== undefined) this.model = message.model;
    if (message.system !== undefined) this.system = message.system;
    if (message.tools !== undefined) this.clientTools = message.tools;
    this.hooks?.changed();
    return { ok: true };
  }

  /** The model turns use: the principal's pin, else the client's choice, else the server's default. */
  private get effectiveModel(): string | undefined {
    return this.principal.model ?? this.model ?? this.ctx.defaultModel;
  }

  /** The operator's prompt, then the identity's, then the client's; each only when present. */
  private get effectiveSystem(): string | undefined {
    const parts = [this.ctx.policy.system, this.principal.system, this.system].filter((p): p is string => p !== undefined && p !== "");
    return parts.length > 0 ? parts.join("\n\n") : undefined;
  }

  private startTurn(input: string, messageId: string | undefined, onTurn?: (turnId: string) => void): string {
    const id = `t${++this.turnCounter}`;
    onTurn?.(id);
    const tools = this.principal.tools;
    const turn = new Turn(id, input, {
      messageId,
      sessionId: this.id,
      identity: this.principal.identity,
      agent: this.ctx.agent,
      tools: this.ctx.tools,
      allowedTools: tools ? new Set(tools) : undefined,
      model: this.effectiveModel,
      system: this.effectiveSystem,
      clientTools: this.clientTools,
      history: this.history,
      maxSteps: this.ctx.limits.maxSteps,
      clientToolTimeoutMs: this.ctx.limits.clientToolTimeoutMs,
      maxOutputChars: this.ctx.limits.maxTurnOutputChars,
      maxToolArgsChars: this.ctx.limits.maxToolArgsChars,
      timeoutMs: this.ctx.limits.turnTimeoutMs,
      emit: (event) => this.emit(event),
      emitToken: (turn, text) => this.emitToken(turn, text),
      onEnd: (ended) => this.onTurnEnd(ended, entry),
      cancelSettled: this.ctx.telemetry.cancelSettled,
      log: (level, obj, msg) => this.ctx.logger[level]({ sessionId: this.id, ...obj }, msg),
    });
    let ran = false;
    const entry: QueuedTurn & { ran(): boolean } = {
      identity: this.principal.identity,
      start: () => {
        ran = true;
        void turn.run();
        if (turn.runStartedAt > 0) this.ctx.telemetry.turnStarted(turn.runStartedAt - turn.record.startedAt);
      },
      moved: (position, etaMs) => turn.queued(position, etaMs),
      expire: (why) => {
        const retryAfterMs = this.ctx.queue.retryAfterMs();
        if (why === "timeout") turn.expire(ErrorCode.QueueTimeout, "no slot freed up within the queue timeout", retryAfterMs);
        else turn.expire(ErrorCode.ServerDraining, "the server is shutting down: send this again shortly", retryAfterMs);
      },
      ran: () => ran,
    };
    this.activeTurn = turn;
    this.heldTurn = turn;
    const turns = (this.turns ??= new Map());
    turns.set(id, turn.record);
    trimTurnRecords(turns, this.ctx.limits.maxTurnsKept, this.ctx.limits.maxHistoryChars);
    this.history.push({ role: "user", text: input });
    if (messageId !== undefined) this.messageIds?.settle(messageId, id);
    // Saved at once (one write per turn): a node taking over must learn of this turn even when a long one has
    // pushed its turn_start out of the log, or the turn would never end.
    this.hooks?.changed();
    turn.begin();
    // Checked by canAccept() before anything changed, and nothing ran since: the queue has room.
    this.ctx.queue.request(entry);
    return id;
  }

  private onTurnEnd(turn: Turn, entry: QueuedTurn & { ran(): boolean }): void {
    if (this.activeTurn === turn) this.activeTurn = null;
    this.lastActivity = this.ctx.now();
    if (entry.ran()) this.ctx.queue.finished(Date.now() - turn.runStartedAt);
    else this.ctx.queue.remove(entry);
    const { identity } = this.principal;
    if (this.heldTurn === turn) {
      this.heldTurn = null;
      this.quotas?.release(identity, "turns");
    }
    const spent = turn.record.inputTokens + turn.record.outputTokens;
    if (spent > 0 && this.quotas) {
      const now = this.ctx.now();
      this.quotas.add(identity, "tokens_per_minute", spent, now);
      this.quotas.add(identity, "tokens_per_day", spent, now);
    }
    trimHistory(this.history, this.ctx.limits);
    if (this.turns) trimTurnRecords(this.turns, this.ctx.limits.maxTurnsKept, this.ctx.limits.maxHistoryChars);
    this.hooks?.changed();
    this.reportTurn(turn.id, turn.report());
  }

  /** One ended turn to the metrics, and one log line: counts and timings, never its input or output text. */
  private reportTurn(turnId: string, report: TurnReport): void {
    this.ctx.telemetry.turnEnded(report);
    this.ctx.logger.info({ sessionId: this.id, turn: turnId, identity: this.principal.identity, ...report }, "turn ended");
  }

  turn(turnId: string): TurnRecord | undefined {
    return this.turns?.get(turnId);
  }

  snapshot(): SessionSnapshot {
    return {
      sessionId: this.id,
      lastSeq: this.log.lastSeq,
      firstSeq: this.log.firstSeq,
      activeTurn: this.activeTurnId,
      pendingInput: this.pending,
      config: { model: this.effectiveModel, system: this.system, tools: this.clientTools },
      history: [...this.history],
      turns: this.turns ? [...this.turns.values()] : [],
    };
  }

  /** Ends the session: cancels its turn and closes every attachment with `code`. */
  end(code: number, reason: string): void {
    if (this.ended) return;
    this.activeTurn?.cancel("session_ended");
    this.ended = true;
    this.uncount();
    for (const attachment of this.attachments) attachment.close(code, reason);
  }

  isIdle(now: number): boolean {
    return this.attachments.length === 0 && !this.activeTurn && now - this.lastActivity > this.ctx.limits.sessionIdleMs;
  }
}

/** How long a client refused for memory should wait before it retries. */
const OVERLOADED_RETRY_MS = 5000;

/**
 * Keeps the newest turn records (for polling) within `maxRecords` and, for finished ones, within
 * `maxChars` of input and text; the newest record always stays, and so does a running or queued one.
 */
function trimTurnRecords(turns: Map<string, TurnRecord>, maxRecords: number, maxChars: number): void {
  while (turns.size > maxRecords) turns.delete(turns.keys().next().value as string);
  let chars = 0;
  const live = (record: TurnRecord) => record.status === "running" || record.status === "queued";
  for (const record of turns.values()) if (!live(record)) chars += record.input.length + record.text.length;
  for (const [id, record] of turns) {
    if (chars <= maxChars || turns.size <= 1) break;
    if (live(record)) continue;
    chars -= record.input.length + record.text.length;
    turns.delete(id);
  }
}

/** An indexed loop: no iterator or closure per event on the hot path. */
function deliver(attachments: readonly Attachment[], entry: LogEntry): void {
  for (let i = 0; i < attachments.length; i++) (attachments[i] as Attachment).deliver(entry);
}
