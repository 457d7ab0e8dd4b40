// The agentwire client: one session, kept connected. It resumes from the last `seq` after every drop (duplicates
// dropped), backs off with full jitter, honours `drain` and `retryAfterMs`, falls back to SSE + POST when a
// WebSocket cannot open, gives every message an id and resends what was not acknowledged, and answers client tools.
import type { ClientMessage, CreateSessionResponse, LoggedEvent, ServerMessage, SessionSnapshot, ToolDeclaration } from "@agentwire/protocol";
import { CloseCode, ErrorCode, shouldReconnect } from "@agentwire/protocol/codes";
import { Emitter } from "./emitter.js";
import { AgentwireError } from "./errors.js";
import { ABNORMAL, type Link, type LinkEnd, type TransportName, type WebSocketConstructor, openSse, openWebSocket } from "./links.js";
import { type SessionStore, type StoredSession, defaultStore, readStored } from "./store.js";
import { Turn } from "./turn.js";

/** A client-executed tool: gets the parsed arguments, returns any JSON value (thrown errors answer `isError`). */
export type ToolHandler = (args: unknown, context: { signal: AbortSignal; callId: string; turn: Turn }) => unknown;

export interface ClientOptions {
  /** The server's base URL (`https://host` or `https://host/prefix`). @default location.origin in a browser */
  url?: string;
  /** Join this session instead of creating one (or reusing the stored one). `lastSeq` resumes after it. */
  session?: { sessionId: string; token: string; lastSeq?: number };
  /** Credentials for creating a session, sent as `Authorization: Bearer`; called for each creation. */
  getToken?: () => string | Promise<string>;
  /** `auto` starts on WebSocket and falls back to SSE + POST when it cannot open. @default "auto" */
  transport?: "auto" | TransportName;
  /** The WebSocket implementation. @default globalThis.WebSocket, else the `ws` package */
  WebSocket?: WebSocketConstructor;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Where the session and its last seq are kept; `null` keeps nothing. @default sessionStorage in a browser, else memory */
  store?: SessionStore | null;
  /** @default "agentwire:" + url */
  storeKey?: string;
  /** Handlers for tools the client executes; declare them to the model with `configure({ tools })`. */
  tools?: Record<string, ToolHandler>;
  /** Reconnect backoff: full jitter between 0 and min(maxMs, baseMs * 2^attempt). @default { baseMs: 500, maxMs: 15000 } */
  reconnect?: { baseMs?: number; maxMs?: number };
  /** With no frame for this long the client pings; browsers never see WebSocket pings. @default 10000 */
  pingIntervalMs?: number;
  /** With no frame at all for this long the link is taken for dead and replaced. @default 25000 */
  deadAfterMs?: number;
  /** WebSocket attempts that fail before opening, in a row, before `auto` falls back to SSE. @default 2 */
  fallbackAfter?: number;
  /** On the fallback, how often a WebSocket is tried again. @default 30000 */
  websocketRetryMs?: number;
  /** Messages waiting for a connection or an answer, at most; keep it within the server's AGENTWIRE_MESSAGE_ID_WINDOW (64), which is how many resent ids it recognises. @default 64 */
  maxQueued?: number;
  /** Failed tries at creating the session (the network, retryable refusals) before `connect()` rejects. @default Infinity */
  connectAttempts?: number;
}

export type ConnectionStatus = "idle" | "connecting" | "open" | "fallback" | "reconnecting" | "closed";

export interface ConnectionState {
  status: ConnectionStatus;
  /** The transport of the current (or last) link. */
  transport: TransportName | null;
  /** Why the client is closed (or, while reconnecting, why the last link ended). */
  reason?: { code: number; message: string };
}

export interface ClientEvents {
  state: ConnectionState;
  /** Every server message of the session once: logged events deduplicated by `seq`, then `ack`, `error`... */
  message: ServerMessage;
  /** A turn appeared: one this client started, or one started elsewhere (another tab, a POST). */
  turn: Turn;
  /** The log no longer held the position the client resumed from: events were missed; fetch `snapshot()`. */
  recovered: { lastSeq: number };
  /** A protocol error that answers no message of this client (its id unknown), or a turn's logged error. */
  error: AgentwireError;
}

interface Pending {
  message: ClientMessage;
  resolve: (answer: ServerMessage) => void;
  reject: (error: AgentwireError) => void;
  retries: number;
}

/** Refusals worth sending the same message again for, after `retryAfterMs`: the server will take it later. */
const RETRY_CODES: ReadonlySet<string> = new Set([ErrorCode.RateLimited, ErrorCode.Overloaded, ErrorCode.ServerDraining, ErrorCode.OwnerUnavailable, ErrorCode.QueueFull, ErrorCode.Internal]);
const MAX_RETRIES = 5;

function randomId(): string {
  const bytes = new Uint8Array(6);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("");
}

const isLogged = (m: ServerMessage): m is LoggedEvent => "seq" in m && typeof m.seq === "number";

export class AgentwireClient extends Emitter<ClientEvents> {
  /** The last logged `seq` handed to the application. */
  lastSeq = 0;
  state: ConnectionState = { status: "idle", transport: null };
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly store: SessionStore | null;
  private readonly storeKey: string;
  private session: StoredSession | null = null;
  /** True once a position is known: links resume after `lastSeq` rather than join live. */
  private positioned = false;
  private link: Link | null = null;
  private welcomed = false;
  private probe: Link | null = null;
  /** The position the probe resumes after. */
  private probeAfter = 0;
  private WS: WebSocketConstructor | null = null;
  private useSse: boolean;
  private failuresBeforeOpen = 0;
  private attempt = 0;
  private drainDelayMs: number | null = null;
  /** Set before the client ends a link itself to replace it: how that end counts. */
  private replacing = false;
  private closed = false;
  private lastActivity = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly turnsByMessage = new Map<string, Turn>();
  private readonly turnsById = new Map<string, Turn>();
  private readonly handledCalls = new Set<string>();
  private readonly idPrefix = `${randomId()}-`;
  private counter = 0;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly onShut = new Set<() => void>();
  private liveness: ReturnType<typeof setInterval> | null = null;
  private persistTimer: ReturnType<typeof setTimeout> | null = null;
  private opened: { promise: Promise<void>; resolve: () => void; reject: (e: AgentwireError) => void } | null = null;

  constructor(private readonly options: ClientOptions = {}) {
    super();
    const url = options.url ?? (globalThis as { location?: { origin: string } }).location?.origin;
    if (!url) throw new TypeError("agentwire client: options.url is required outside a browser");
    this.base = url.replace(/\/+$/, "");
    const f = options.fetch ?? globalThis.fetch;
    this.fetchFn = (input, init) => f(input, init);
    this.store = options.store === undefined ? defaultStore() : options.store;
    this.storeKey = options.storeKey ?? `agentwire:${this.base}`;
    this.useSse = options.transport === "sse";
  }

  /** The newest turn still running, as far as this client knows (started here or elsewhere), or null. */
  get activeTurn(): Turn | null {
    let last: Turn | null = null;
    for (const turn of this.turnsById.values()) if (!turn.ended) last = turn;
    return last;
  }

  /** The handle of turn `id`: the one this client holds, or a new one that gets the turn's events from now on. */
  turn(id: string): Turn {
    let turn = this.turnsById.get(id);
    if (!turn) {
      turn = new Turn(this, undefined);
      this.bindTurn(turn, id);
    }
    return turn;
  }

  /** The session this client talks to, once known. */
  get sessionId(): string | null {
    return this.session?.sessionId ?? null;
  }

  /** Finds or creates the session and opens the first link; resolves once it is open. Rejects if the client closes first. */
  async connect(): Promise<void> {
    if (this.closed) throw new AgentwireError("client_closed", "the client is closed");
    if (this.state.status !== "idle") return this.waitOpen();
    this.setState("connecting", null);
    const ready = this.waitOpen();
    try {
      if (!this.useSse) this.WS = await this.webSocketImpl();
      this.session = await this.findSession();
    } catch (err) {
      ready.catch(() => undefined);
      const error = err instanceof AgentwireError ? err : new AgentwireError(ErrorCode.Internal, String((err as Error)?.message ?? err), true);
      this.shut({ code: error.code === "client_closed" ? CloseCode.Normal : CloseCode.InternalError, message: error.message });
      throw error;
    }
    this.persistNow();
    this.liveness = setInterval(() => this.checkLiveness(), Math.min(this.options.pingIntervalMs ?? 10_000, 1_000));
    this.openLink();
    return ready;
  }

  /** Sends a final input and returns its turn. `interrupt` cancels a running turn first (barge-in). */
  send(text: string, options: { interrupt?: boolean } = {}): Turn {
    const id = this.nextId();
    const turn = new Turn(this, id);
    this.turnsByMessage.set(id, turn);
    this.request({ type: "input", id, text, final: true, interrupt: options.interrupt ?? false }).then(
      (ack) => {
        if (ack.type === "ack" && ack.turn) this.bindTurn(turn, ack.turn);
      },
      (error: AgentwireError) => {
        this.turnsByMessage.delete(id);
        turn.fail(error);
      },
    );
    this.emit("turn", turn);
    return turn;
  }

  /** Barge-in: cancels the running turn and starts one with `text`. */
  interrupt(text: string): Turn {
    return this.send(text, { interrupt: true });
  }

  /** Partial input (typing, voice): buffered by the server and joined to the next final input. */
  async type(text: string, options: { interrupt?: boolean } = {}): Promise<void> {
    await this.request({ type: "input", id: this.nextId(), text, final: false, interrupt: options.interrupt ?? false });
  }

  /** Cancels the running turn (only `turn`, when given). */
  async cancel(turn?: string): Promise<void> {
    await this.request(turn ? { type: "cancel", id: this.nextId(), turn } : { type: "cancel", id: this.nextId() });
  }

  /** Sets the model, the system prompt, or the client tools for later turns. */
  async configure(config: { model?: string; system?: string; tools?: Array<Partial<ToolDeclaration> & { name: string }> }): Promise<void> {
    await this.request({ type: "configure", id: this.nextId(), ...config } as ClientMessage);
  }

  /** Answers a client tool call the application runs itself (one without a handler in `options.tools`). */
  async toolResult(callId: string, output: unknown, isError = false): Promise<void> {
    this.handledCalls.add(callId);
    await this.request({ type: "tool_result", id: this.nextId(), callId, output: output ?? null, isError });
  }

  /** The session's state on the server: history, kept turns, `lastSeq` (after `recovered`, rebuild from it). */
  async snapshot(): Promise<SessionSnapshot> {
    const session = this.requireSession();
    const res = await this.fetchFn(this.url(`/v1/sessions/${session.sessionId}`), { headers: { authorization: `Bearer ${session.token}` }, cache: "no-store" });
    if (res.status !== 200) throw await httpError(res);
    return (await res.json()) as SessionSnapshot;
  }

  /** Replaces the connection as a network drop would: the client reconnects and resumes. */
  dropConnection(): void {
    this.replaceLink();
  }

  /** Closes the connection and stops reconnecting; the session stays on the server (and in the store). */
  close(): void {
    this.shut({ code: CloseCode.Normal, message: "client closed" });
  }

  /** Deletes the session on the server, forgets it, and closes. */
  async end(): Promise<void> {
    const session = this.session;
    this.close();
    this.store?.removeItem(this.storeKey);
    if (session) await this.fetchFn(this.url(`/v1/sessions/${session.sessionId}`), { method: "DELETE", headers: { authorization: `Bearer ${session.token}` } }).catch(() => undefined);
  }

  // ---- sessions ----

  private async findSession(): Promise<StoredSession> {
    const given = this.options.session;
    const stored = this.store ? readStored(this.store, this.storeKey) : null;
    if (given) {
      const lastSeq = given.lastSeq ?? (stored?.sessionId === given.sessionId ? stored.lastSeq : undefined);
      this.positioned = lastSeq !== undefined;
      this.lastSeq = lastSeq ?? 0;
      return { sessionId: given.sessionId, token: given.token, lastSeq: this.lastSeq };
    }
    if (stored) {
      this.positioned = true;
      this.lastSeq = stored.lastSeq;
      return stored;
    }
    return this.createSession();
  }

  /** Creates a session, retrying through network failures and retryable refusals (with backoff) until the client closes. */
  private async createSession(): Promise<StoredSession> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new AgentwireError("client_closed", "the client is closed");
      const headers: Record<string, string> = {};
      if (this.options.getToken) headers.authorization = `Bearer ${await this.options.getToken()}`;
      let res: Response | null = null;
      try {
        res = await this.fetchFn(this.url("/v1/sessions"), { method: "POST", headers });
      } catch {
        // The network: try again.
      }
      if (res?.status === 201) {
        const created = (await res.json()) as CreateSessionResponse;
        this.positioned = true;
        this.lastSeq = 0;
        return { sessionId: created.sessionId, token: created.token, lastSeq: 0 };
      }
      const error = res ? await httpError(res) : null;
      if ((error && !error.retryable) || attempt + 1 >= (this.options.connectAttempts ?? Number.POSITIVE_INFINITY)) {
        throw error ?? new AgentwireError("unreachable", `the server cannot be reached at ${this.base}`, true);
      }
      this.setState("connecting", null, { code: ABNORMAL, message: error?.message ?? "the server cannot be reached" });
      await this.pause(error?.retryAfterMs ?? this.backoff(attempt));
    }
  }

  private requireSession(): StoredSession {
    if (!this.session) throw new AgentwireError("client_closed", "connect() first");
    return this.session;
  }

  // ---- links ----

  private openLink(): void {
    if (this.closed) return;
    const session = this.requireSession();
    const transport: TransportName = this.useSse ? "sse" : "websocket";
    this.welcomed = false;
    this.lastActivity = Date.now();
    const link = this.startLink(transport, session);
    this.link = link;
    this.setState(this.state.status === "connecting" ? "connecting" : "reconnecting", transport, this.state.reason);
  }

  private startLink(transport: TransportName, session: StoredSession): Link {
    const after = this.positioned ? `?afterSeq=${this.lastSeq}` : "";
    const path = `/v1/sessions/${encodeURIComponent(session.sessionId)}`;
    // Handlers look the link up when they run: a link replaced meanwhile is ignored.
    let link: Link | null = null;
    const handlers = {
      frame: (m: ServerMessage) => link && this.onFrame(link, m),
      activity: () => {
        if (link === this.link) this.lastActivity = Date.now();
      },
      ended: (e: LinkEnd) => link && this.onEnded(link, e),
    };
    link =
      transport === "websocket"
        ? openWebSocket(this.WS as WebSocketConstructor, this.url(`${path}/ws${after}`).replace(/^http/, "ws"), session.token, handlers)
        : openSse(this.fetchFn, { events: this.url(`${path}/events${after}`), messages: this.url(`${path}/messages`) }, session.token, handlers);
    return link;
  }

  private onFrame(link: Link, message: ServerMessage): void {
    if (link === this.probe) {
      // A WebSocket tried while on the fallback: once it is welcomed it replaces the SSE link.
      if (message.type !== "session") return;
      const old = this.link;
      this.probe = null;
      this.useSse = false;
      this.failuresBeforeOpen = 0;
      this.link = null;
      old?.close();
      if (this.lastSeq !== this.probeAfter) {
        // Events came over SSE meanwhile: this link would replay some of them, perhaps merged with newer ones
        // (from..seq), which no dedup by seq can split. WebSocket works: open a fresh one from where we are.
        link.close();
        this.openLink();
        return;
      }
      this.link = link;
      this.lastActivity = Date.now();
    } else if (link !== this.link) return;
    if (message.type === "session") return this.welcome(link, message);
    if (isLogged(message)) return this.logged(message);
    this.emit("message", message);
    if (message.type === "drain") {
      this.drainDelayMs = message.reconnectAfterMs;
      return;
    }
    if (message.type === "ack" || message.type === "pong") {
      const pending = message.id !== undefined ? this.pending.get(message.id) : undefined;
      if (pending) {
        this.pending.delete(message.id as string);
        pending.resolve(message);
      }
      return;
    }
    if (message.type === "error") this.refused(message);
  }

  private welcome(link: Link, message: Extract<ServerMessage, { type: "session" }>): void {
    this.welcomed = true;
    this.attempt = 0;
    this.failuresBeforeOpen = 0;
    this.drainDelayMs = null;
    if (!this.positioned || (message.resumed && !message.recovered)) {
      const missed = this.positioned;
      this.lastSeq = message.lastSeq;
      this.positioned = true;
      this.persistNow();
      if (missed) this.emit("recovered", { lastSeq: message.lastSeq });
    }
    this.emit("message", message);
    this.setState(link.transport === "sse" ? "fallback" : "open", link.transport);
    // Whatever was not answered goes again, in order: the server answers a message it took before with its first ack.
    for (const pending of this.pending.values()) link.send(pending.message);
    this.opened?.resolve();
    this.opened = null;
    if (link.transport === "sse" && this.options.transport !== "sse") this.later(() => this.tryWebSocket(), this.options.websocketRetryMs ?? 30_000);
  }

  private logged(event: LoggedEvent): void {
    // Seen already (a replay overlapping what arrived live, two links during a switch): once is enough.
    if (event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    this.persistSoon();
    let turn = this.turnsById.get(event.turn as string);
    if (event.type === "turn_start") {
      turn = (event.id !== undefined ? this.turnsByMessage.get(event.id) : undefined) ?? turn;
      if (!turn) {
        turn = new Turn(this, undefined);
        this.emit("turn", turn);
      }
      this.bindTurn(turn, event.turn);
    } else if (!turn && event.turn !== undefined && event.type !== "turn_end") {
      // A turn that began before this client joined (or before the position it resumed from).
      turn = new Turn(this, undefined);
      this.bindTurn(turn, event.turn);
      this.emit("turn", turn);
    }
    this.emit("message", event);
    if (event.type === "error") this.emit("error", new AgentwireError(event.code as ErrorCode, event.message, event.retryable, event.field, event.retryAfterMs, event.limit));
    if (!turn) return;
    turn.receive(event);
    if (event.type === "tool" && event.phase === "ready" && event.executor === "client") this.runTool(turn, event.callId, event.name, event.args);
    if (event.type === "turn_end") {
      this.turnsById.delete(event.turn);
      if (turn.messageId !== undefined) this.turnsByMessage.delete(turn.messageId);
      this.persistNow();
    }
  }

  private bindTurn(turn: Turn, id: string): void {
    turn.bind(id);
    if (!turn.ended) this.turnsById.set(id, turn);
  }

  private refused(message: Extract<ServerMessage, { type: "error" }>): void {
    const error = new AgentwireError(message.code as ErrorCode, message.message, message.retryable, message.field, message.retryAfterMs, message.limit);
    const pending = message.id !== undefined ? this.pending.get(message.id) : undefined;
    if (!pending) {
      this.emit("error", error);
      return;
    }
    if (RETRY_CODES.has(message.code) && pending.retries < MAX_RETRIES) {
      pending.retries++;
      // Sent again after the wait on whatever link is open then (or on the next one's welcome).
      this.later(() => {
        if (this.pending.get(message.id as string) === pending && this.welcomed) this.link?.send(pending.message);
      }, message.retryAfterMs ?? this.backoff(pending.retries));
      return;
    }
    this.pending.delete(message.id as string);
    pending.reject(error);
  }

  private onEnded(link: Link, end: LinkEnd): void {
    if (link === this.probe) {
      this.probe = null;
      if (!this.closed && this.useSse) this.later(() => this.tryWebSocket(), this.options.websocketRetryMs ?? 30_000);
      return;
    }
    if (link !== this.link) return;
    this.link = null;
    this.welcomed = false;
    if (this.closed) return;
    const code = this.replacing ? ABNORMAL : end.code;
    this.replacing = false;
    const reason = { code, message: end.reason };
    if (!shouldReconnect(code)) {
      this.shut(reason);
      return;
    }
    if (!end.opened && link.transport === "websocket" && (this.options.transport ?? "auto") === "auto") {
      if (++this.failuresBeforeOpen >= (this.options.fallbackAfter ?? 2)) this.useSse = true;
    }
    const delay = this.drainDelayMs !== null ? this.drainDelayMs * (0.8 + Math.random() * 0.4) : (end.retryAfterMs ?? this.backoff(this.attempt));
    this.attempt++;
    this.drainDelayMs = null;
    this.setState("reconnecting", link.transport, reason);
    // A zero wait opens at once: a timer would add at least a millisecond to every resume.
    if (delay <= 0) this.openLink();
    else this.later(() => this.openLink(), delay);
  }

  private tryWebSocket(): void {
    if (this.closed || !this.useSse || this.probe || !this.link || !this.session) return;
    void this.webSocketImpl().then((WS) => {
      if (this.closed || !this.useSse || this.probe || !this.session) return;
      this.WS = WS;
      this.probeAfter = this.lastSeq;
      this.probe = this.startLink("websocket", this.session);
    }, () => undefined);
  }

  private replaceLink(): void {
    if (!this.link) return;
    this.replacing = true;
    this.link.close();
  }

  private checkLiveness(): void {
    if (!this.link || !this.welcomed) return;
    const quiet = Date.now() - this.lastActivity;
    if (quiet >= (this.options.deadAfterMs ?? 25_000)) this.replaceLink();
    else if (quiet >= (this.options.pingIntervalMs ?? 10_000)) this.link.send({ type: "ping", id: `${this.idPrefix}ping` });
  }

  // ---- messages ----

  private request(message: ClientMessage): Promise<ServerMessage> {
    if (this.closed) return Promise.reject(new AgentwireError("client_closed", "the client is closed"));
    if (this.pending.size >= (this.options.maxQueued ?? 64)) return Promise.reject(new AgentwireError("outbox_full", "too many messages wait for the server", true));
    return new Promise((resolve, reject) => {
      this.pending.set(message.id as string, { message, resolve, reject, retries: 0 });
      if (this.link && this.welcomed) this.link.send(message);
    });
  }

  private runTool(turn: Turn, callId: string, name: string, args: unknown): void {
    const handler = this.options.tools?.[name];
    if (!handler || this.handledCalls.has(callId)) return;
    this.handledCalls.add(callId);
    // Only recent calls can come again (a replay after a drop): the oldest are forgotten.
    if (this.handledCalls.size > 1024) this.handledCalls.delete(this.handledCalls.values().next().value as string);
    const controller = new AbortController();
    const stop = turn.on("end", () => controller.abort());
    void Promise.resolve()
      .then(() => handler(args, { signal: controller.signal, callId, turn }))
      .then(
        (output) => ({ output: output === undefined ? null : output, isError: false }),
        (err: unknown) => ({ output: { error: err instanceof Error ? err.message : String(err) }, isError: true }),
      )
      .then(({ output, isError }) => {
        stop();
        if (!controller.signal.aborted) this.request({ type: "tool_result", id: this.nextId(), callId, output, isError }).catch(() => undefined);
      });
  }

  private nextId(): string {
    return `${this.idPrefix}${++this.counter}`;
  }

  // ---- plumbing ----

  private waitOpen(): Promise<void> {
    if (this.state.status === "open" || this.state.status === "fallback") return Promise.resolve();
    if (this.closed) return Promise.reject(new AgentwireError("client_closed", "the client is closed"));
    let opened = this.opened;
    if (!opened) {
      const made = {} as { promise: Promise<void>; resolve: () => void; reject: (e: AgentwireError) => void };
      made.promise = new Promise<void>((resolve, reject) => Object.assign(made, { resolve, reject }));
      this.opened = opened = made;
    }
    return opened.promise;
  }

  private shut(reason: { code: number; message: string }): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const wake of [...this.onShut]) wake();
    if (this.liveness) clearInterval(this.liveness);
    this.persistNow();
    const link = this.link;
    const probe = this.probe;
    this.link = this.probe = null;
    link?.close();
    probe?.close();
    const error = new AgentwireError(closeErrorCode(reason.code), reason.message);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    for (const turn of new Set([...this.turnsById.values(), ...this.turnsByMessage.values()])) turn.fail(error);
    this.setState("closed", this.state.transport, reason);
    this.opened?.reject(error);
    this.opened = null;
  }

  private setState(status: ConnectionStatus, transport: TransportName | null, reason?: { code: number; message: string }): void {
    const same = this.state.status === status && this.state.transport === transport && this.state.reason?.code === reason?.code;
    this.state = reason ? { status, transport, reason } : { status, transport };
    if (!same) this.emit("state", this.state);
  }

  /** Waits `ms`, or less when the client closes meanwhile. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.onShut.delete(wake);
        resolve();
      };
      this.onShut.add(wake);
      this.later(wake, ms);
    });
  }

  private later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private backoff(attempt: number): number {
    const { baseMs = 500, maxMs = 15_000 } = this.options.reconnect ?? {};
    return Math.random() * Math.min(maxMs, baseMs * 2 ** attempt);
  }

  private persistSoon(): void {
    if (this.persistTimer || !this.store) return;
    // Storage writes are synchronous: at most one per 250 ms while tokens stream.
    this.persistTimer = setTimeout(() => this.persistNow(), 250);
  }

  private persistNow(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    if (!this.store || !this.session) return;
    try {
      this.store.setItem(this.storeKey, JSON.stringify({ sessionId: this.session.sessionId, token: this.session.token, lastSeq: this.lastSeq }));
    } catch {
      // A full or forbidden store only costs the resume after a reload.
    }
  }

  private url(path: string): string {
    return `${this.base}${path}`;
  }

  private async webSocketImpl(): Promise<WebSocketConstructor> {
    if (this.options.WebSocket) return this.options.WebSocket;
    const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (global) return global;
    // Node 20 has no WebSocket: the optional `ws` peer. A computed name keeps bundlers from pulling it into browser builds.
    const name = "ws";
    try {
      const mod = (await import(/* @vite-ignore */ name)) as { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
      const WS = mod.WebSocket ?? mod.default;
      if (WS) return WS;
    } catch {
      // Reported below.
    }
    throw new AgentwireError(ErrorCode.Internal, "no WebSocket implementation: install `ws` or pass options.WebSocket");
  }
}

/** The error code pending work fails with when the client closes for `code`. */
function closeErrorCode(code: number): AgentwireError["code"] {
  if (code === CloseCode.Unauthorized) return ErrorCode.Unauthorized;
  if (code === CloseCode.SessionNotFound || code === CloseCode.SessionEnded) return ErrorCode.SessionNotFound;
  if (code === CloseCode.InternalError) return ErrorCode.Internal;
  return "client_closed";
}

async function httpError(res: Response): Promise<AgentwireError> {
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string; retryable?: boolean; field?: string; retryAfterMs?: number; limit?: string } } | null;
  const e = body?.error;
  return new AgentwireError((e?.code as ErrorCode | undefined) ?? ErrorCode.Internal, e?.message ?? `HTTP ${res.status}`, e?.retryable ?? res.status >= 500, e?.field, e?.retryAfterMs, e?.limit);
}
