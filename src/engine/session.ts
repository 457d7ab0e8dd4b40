// A session: its log, history, configuration, pending input, running turn, and attached clients.
import {
  type ClientMessage,
  type ConfigureMessage,
  ErrorCode,
  type InputMessage,
  type LoggedEventInput,
  type ServerMessage,
  type ToolDeclaration,
} from "../../protocol/index.js";
import type { HistoryMessage } from "./agent.js";
import type { Attachment } from "./attachment.js";
import type { EngineContext } from "./context.js";
import { EventLog } from "./event-log.js";
import { TokenBucket } from "./rate.js";
import { Turn, type TurnRecord } from "./turn.js";

/** Why a client message was refused. `status` is the HTTP status the HTTP transport answers with. */
export interface SubmitError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
  field?: string;
  status: number;
}

export type SubmitOutcome = { ok: true; turn?: string; reply?: ServerMessage } | { ok: false; error: SubmitError };

export interface SessionSnapshot {
  sessionId: string;
  lastSeq: number;
  firstSeq: number;
  activeTurn: string | null;
  pendingInput: string;
  config: { model: string | undefined; system: string | undefined; tools: ToolDeclaration[] };
  history: HistoryMessage[];
  turns: TurnRecord[];
}

const refuse = (code: ErrorCode, message: string, status: number, extra: Partial<SubmitError> = {}): SubmitOutcome => ({
  ok: false,
  error: { code, message, retryable: false, status, ...extra },
});

export class Session {
  readonly log: EventLog;
  readonly attachments = new Set<Attachment>();
  readonly history: HistoryMessage[] = [];
  lastActivity: number;
  activeTurn: Turn | null = null;
  private pending = "";
  private model: string | undefined;
  private system: string | undefined;
  private clientTools: ToolDeclaration[] = [];
  private readonly turns = new Map<string, TurnRecord>();
  private turnCounter = 0;
  private readonly inputRate: TokenBucket;
  private ended = false;

  constructor(
    readonly id: string,
    readonly token: string,
    private readonly ctx: EngineContext,
  ) {
    this.log = new EventLog({ maxEvents: ctx.limits.logMaxEvents, maxAgeMs: ctx.limits.logMaxAgeMs }, ctx.now);
    this.inputRate = new TokenBucket(ctx.limits.inputRatePerSec, ctx.limits.inputBurst, ctx.now);
    this.lastActivity = ctx.now();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Assigns the next seq, logs the event and fans it out to every attached client. */
  emit(event: LoggedEventInput): void {
    const entry = this.log.append(event);
    for (const attachment of this.attachments) attachment.deliver(entry);
  }

  touch(): void {
    this.lastActivity = this.ctx.now();
  }

  /**
   * Applies one client message (`resume` is the attachment's business). `onTurn` runs with the new
   * turn's id just before its first event, so an acknowledgement can precede `turn_start`.
   */
  submit(message: ClientMessage, onTurn?: (turnId: string) => void): SubmitOutcome {
    if (this.ended) return refuse(ErrorCode.SessionNotFound, "the session has ended", 404);
    this.lastActivity = this.ctx.now();
    const waitMs = this.inputRate.take();
    if (waitMs > 0) {
      return refuse(ErrorCode.RateLimited, "too many messages for this session", 429, { retryable: true, retryAfterMs: waitMs });
    }
    switch (message.type) {
      case "input":
        return this.input(message, onTurn);
      case "cancel":
        if (this.activeTurn && (!message.turn || message.turn === this.activeTurn.id)) this.activeTurn.cancel("cancelled");
        return { ok: true };
      case "tool_result":
        if (!this.activeTurn?.resolveClientTool(message.callId, message.output, message.isError)) {
          return refuse(ErrorCode.ToolCallNotFound, `no tool call "${message.callId}" is waiting for a result`, 404, { field: "callId" });
        }
        return { ok: true };
      case "configure":
        return this.configure(message);
      case "ping":
        return { ok: true, reply: { type: "pong", id: message.id, time: Date.now() } };
      case "resume":
        return refuse(ErrorCode.InvalidMessage, "resume is only meaningful on a stream connection", 400, { field: "type" });
    }
  }

  private input(message: InputMessage, onTurn?: (turnId: string) => void): SubmitOutcome {
    const { limits } = this.ctx;
    if (message.interrupt && this.activeTurn) this.activeTurn.cancel("interrupted");
    const text = this.pending + message.text;
    if (text.length > limits.maxInputChars) {
      return refuse(ErrorCode.InputTooLarge, `input exceeds ${limits.maxInputChars} characters`, 413, { field: "text" });
    }
    if (!message.final) {
      this.pending = text;
      return { ok: true };
    }
    if (this.activeTurn) {
      return refuse(ErrorCode.TurnActive, `turn ${this.activeTurn.id} is running: cancel it, or send input with interrupt: true`, 409, {
        retryable: true,
        field: "interrupt",
      });
    }
    if (text.trim().length === 0) return refuse(ErrorCode.InvalidMessage, "input text is empty", 400, { field: "text" });
    if (this.ctx.runningTurns() >= limits.maxConcurrentTurns) {
      return refuse(ErrorCode.RateLimited, "the server is running its maximum number of turns", 429, { retryable: true, retryAfterMs: 1000 });
    }
    this.pending = "";
    return { ok: true, turn: this.startTurn(text, onTurn) };
  }

  private configure(message: ConfigureMessage): SubmitOutcome {
    if (message.model !== undefined) this.model = message.model;
    if (message.system !== undefined) this.system = message.system;
    if (message.tools !== undefined) {
      const names = new Set<string>();
      for (const [i, tool] of message.tools.entries()) {
        if (names.has(tool.name) || this.ctx.tools.get(tool.name)) {
          return refuse(ErrorCode.InvalidMessage, `tool name "${tool.name}" is already taken`, 400, { field: `tools.${i}.name` });
        }
        names.add(tool.name);
      }
      this.clientTools = message.tools;
    }
    return { ok: true };
  }

  private startTurn(input: string, onTurn?: (turnId: string) => void): string {
    const id = `t${++this.turnCounter}`;
    onTurn?.(id);
    const turn = new Turn(id, input, {
      sessionId: this.id,
      agent: this.ctx.agent,
      tools: this.ctx.tools,
      model: this.model ?? this.ctx.defaultModel,
      system: this.system,
      clientTools: this.clientTools,
      history: this.history,
      maxSteps: this.ctx.limits.maxSteps,
      clientToolTimeoutMs: this.ctx.limits.clientToolTimeoutMs,
      emit: (event) => this.emit(event),
      onEnd: (ended) => this.onTurnEnd(ended),
      log: (level, obj, msg) => this.ctx.logger[level]({ sessionId: this.id, ...obj }, msg),
    });
    this.activeTurn = turn;
    this.turns.set(id, turn.record);
    while (this.turns.size > this.ctx.limits.maxTurnsKept) this.turns.delete(this.turns.keys().next().value as string);
    this.ctx.turnStarted();
    void turn.run();
    return id;
  }

  private onTurnEnd(turn: Turn): void {
    if (this.activeTurn === turn) this.activeTurn = null;
    this.lastActivity = this.ctx.now();
    this.ctx.turnEnded();
    this.trimHistory();
  }

  /** Keeps history within its message budget; provider adapters trim further by their own budget. */
  private trimHistory(): void {
    const max = this.ctx.limits.maxHistoryMessages;
    if (this.history.length <= max) return;
    let cut = this.history.length - max;
    // Never start the kept history with tool results whose call was cut away.
    while (cut < this.history.length && this.history[cut]?.role !== "user") cut++;
    this.history.splice(0, cut);
  }

  turn(turnId: string): TurnRecord | undefined {
    return this.turns.get(turnId);
  }

  snapshot(): SessionSnapshot {
    return {
      sessionId: this.id,
      lastSeq: this.log.lastSeq,
      firstSeq: this.log.firstSeq,
      activeTurn: this.activeTurn?.id ?? null,
      pendingInput: this.pending,
      config: { model: this.model ?? this.ctx.defaultModel, system: this.system, tools: this.clientTools },
      history: [...this.history],
      turns: [...this.turns.values()],
    };
  }

  /** Ends the session: cancels its turn and closes every attachment with `code`. */
  end(code: number, reason: string): void {
    if (this.ended) return;
    this.activeTurn?.cancel("session_ended");
    this.ended = true;
    for (const attachment of [...this.attachments]) attachment.close(code, reason);
  }

  isIdle(now: number): boolean {
    return this.attachments.size === 0 && !this.activeTurn && now - this.lastActivity > this.ctx.limits.sessionIdleMs;
  }
}
