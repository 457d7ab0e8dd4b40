// Who a session belongs to (its principal) and what that identity may hold and spend: per-identity quotas.
import { ErrorCode, QuotaLimit } from "@agentwire/protocol";
import type { SubmitError } from "./session-types.js";

/** Per-identity limits; 0 means no limit. Names are the protocol's `QuotaLimit` values. */
export interface QuotaLimits {
  /** Live sessions. */
  sessions: number;
  /** WebSocket and SSE links open at once. */
  connections: number;
  /** Turns accepted and not yet ended (queued or running). */
  turns: number;
  sessions_per_minute: number;
  /** Input + output tokens (from the upstream's usage) within the current minute. */
  tokens_per_minute: number;
  /** Input + output tokens within the current UTC day. */
  tokens_per_day: number;
}

export const NO_LIMITS: QuotaLimits = Object.freeze({ sessions: 0, connections: 0, turns: 0, sessions_per_minute: 0, tokens_per_minute: 0, tokens_per_day: 0 });

/**
 * Who a session acts for and the operator's policy for it, fixed when the session is created (from an API key,
 * a signed client token, or the client's address in open mode) and kept with the session on every node.
 */
export interface Principal {
  /** `key:<name>`, `key:<name>/<user>`, `jwt:<sub>` or `ip:<address>`: what quotas count by. Never a label or a log of secrets. */
  identity: string;
  /** The one model the session may use. */
  model?: string;
  /** The identity's system prompt: after the operator's, before the client's. */
  system?: string;
  /** The only tool names the session may use; absent: every tool. */
  tools?: string[];
  limits: QuotaLimits;
}

/** The principal of sessions made without one (embedding, tests): no limits of its own. */
export const ANONYMOUS: Principal = Object.freeze({ identity: "local", limits: NO_LIMITS });

export type HeldKind = typeof QuotaLimit.Sessions | typeof QuotaLimit.Connections | typeof QuotaLimit.Turns;
export type WindowKind = typeof QuotaLimit.SessionsPerMinute | typeof QuotaLimit.TokensPerMinute | typeof QuotaLimit.TokensPerDay;

/** Fixed windows aligned to the epoch: a minute, a UTC day. */
export const WINDOW_MS: Readonly<Record<WindowKind, number>> = {
  sessions_per_minute: 60_000,
  tokens_per_minute: 60_000,
  tokens_per_day: 86_400_000,
};

/** How long a client refused for a held limit is told to wait: something has to end first. */
export const HELD_RETRY_MS: Readonly<Record<HeldKind, number>> = { sessions: 5000, connections: 1000, turns: 1000 };

/**
 * One admission: take one unit of `hold` if the identity holds fewer than its limit, add `take.amount` to a window
 * if that stays within its limit, and require every `check` window to be below its limit. All or nothing.
 */
export interface QuotaRequest {
  hold?: { kind: HeldKind; limit: number };
  take?: { kind: WindowKind; limit: number; amount: number };
  check?: readonly { kind: WindowKind; limit: number }[];
}

export type QuotaAnswer = { ok: true } | { ok: false; limit: QuotaLimit; retryAfterMs: number };

export const GRANTED: QuotaAnswer = Object.freeze({ ok: true });

/**
 * Where quotas are counted: this process (`LocalQuotaStore`), or Redis so that they hold across nodes. A local
 * store answers at once; a shared one answers with a promise, and callers keep their order across it.
 */
export interface QuotaStore {
  admit(identity: string, request: QuotaRequest, now: number): QuotaAnswer | Promise<QuotaAnswer>;
  /** Gives back one unit of a held kind. */
  release(identity: string, kind: HeldKind): void;
  /** Counts one unit of a held kind without a check: a session this node took over from another. */
  adopt(identity: string, kind: HeldKind): void;
  /** Adds spent tokens (or anything counted after the fact) to a window. */
  add(identity: string, kind: WindowKind, amount: number, now: number): void;
  /** Forgets identities that hold nothing and have no current window (bounded memory). */
  sweep(now: number): void;
  /** Resolves once the store can answer (a shared one has registered this node). */
  start?(): Promise<void>;
  close?(): void;
}

/** The limits in effect for one identity: the operator's defaults, then the overrides signed for it. */
export function limitsWith(defaults: QuotaLimits, overrides: Partial<QuotaLimits> | undefined): QuotaLimits {
  if (!overrides) return defaults;
  const out = { ...defaults };
  for (const key of Object.keys(out) as (keyof QuotaLimits)[]) {
    const value = overrides[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** True when a principal has no limit at all: its sessions never ask (or count in) the quota store. */
export function isUnlimited(limits: QuotaLimits): boolean {
  return limits.sessions === 0 && limits.connections === 0 && limits.turns === 0 && limits.sessions_per_minute === 0 && limits.tokens_per_minute === 0 && limits.tokens_per_day === 0;
}

/** True when nothing in `request` has a limit. */
export function unlimited(request: QuotaRequest): boolean {
  if (request.hold && request.hold.limit > 0) return false;
  if (request.take && request.take.limit > 0) return false;
  return !request.check?.some((c) => c.limit > 0);
}

export function windowIndex(kind: WindowKind, now: number): number {
  return Math.floor(now / WINDOW_MS[kind]);
}

export function windowRemainingMs(kind: WindowKind, now: number): number {
  const length = WINDOW_MS[kind];
  return (windowIndex(kind, now) + 1) * length - now;
}

interface IdentityCounts {
  held: Record<HeldKind, number>;
  /** Per window kind: the window's index and its count. */
  windows: Partial<Record<WindowKind, { index: number; count: number }>>;
}

/** Quotas of one node: exact, synchronous, and bounded by the identities that hold or spent something lately. */
export class LocalQuotaStore implements QuotaStore {
  private readonly counts = new Map<string, IdentityCounts>();

  get identities(): number {
    return this.counts.size;
  }

  admit(identity: string, request: QuotaRequest, now: number): QuotaAnswer {
    // A hold is counted even without a limit: its release will be.
    if (!request.hold && unlimited(request)) return GRANTED;
    const counts = this.counts.get(identity) ?? { held: { sessions: 0, connections: 0, turns: 0 }, windows: {} };
    const { hold, take, check } = request;
    if (hold && hold.limit > 0 && counts.held[hold.kind] >= hold.limit) {
      return { ok: false, limit: hold.kind, retryAfterMs: HELD_RETRY_MS[hold.kind] };
    }
    for (const c of check ?? []) {
      if (c.limit > 0 && this.windowCount(counts, c.kind, now) >= c.limit) return { ok: false, limit: c.kind, retryAfterMs: windowRemainingMs(c.kind, now) };
    }
    if (take && take.limit > 0 && this.windowCount(counts, take.kind, now) + take.amount > take.limit) {
      return { ok: false, limit: take.kind, retryAfterMs: windowRemainingMs(take.kind, now) };
    }
    // Kept only once granted: a refusal changes nothing, not even the set of identities.
    this.counts.set(identity, counts);
    if (hold) counts.held[hold.kind]++;
    if (take) this.addTo(counts, take.kind, take.amount, now);
    return GRANTED;
  }

  release(identity: string, kind: HeldKind): void {
    const counts = this.counts.get(identity);
    if (counts && counts.held[kind] > 0) counts.held[kind]--;
  }

  adopt(identity: string, kind: HeldKind): void {
    this.entry(identity).held[kind]++;
  }

  add(identity: string, kind: WindowKind, amount: number, now: number): void {
    if (amount > 0) this.addTo(this.entry(identity), kind, amount, now);
  }

  /** What an identity holds and has counted now (tests, diagnostics). */
  usage(identity: string, now: number): Record<HeldKind | WindowKind, number> {
    const counts = this.counts.get(identity);
    const held = counts?.held ?? { sessions: 0, connections: 0, turns: 0 };
    const w = (kind: WindowKind) => (counts ? this.windowCount(counts, kind, now) : 0);
    return { ...held, sessions_per_minute: w("sessions_per_minute"), tokens_per_minute: w("tokens_per_minute"), tokens_per_day: w("tokens_per_day") };
  }

  sweep(now: number): void {
    for (const [identity, counts] of this.counts) {
      if (counts.held.sessions > 0 || counts.held.connections > 0 || counts.held.turns > 0) continue;
      const current = (Object.keys(counts.windows) as WindowKind[]).some((kind) => this.windowCount(counts, kind, now) > 0);
      if (!current) this.counts.delete(identity);
    }
  }

  private entry(identity: string): IdentityCounts {
    let counts = this.counts.get(identity);
    if (!counts) {
      counts = { held: { sessions: 0, connections: 0, turns: 0 }, windows: {} };
      this.counts.set(identity, counts);
    }
    return counts;
  }

  private windowCount(counts: IdentityCounts, kind: WindowKind, now: number): number {
    const w = counts.windows[kind];
    return w && w.index === windowIndex(kind, now) ? w.count : 0;
  }

  private addTo(counts: IdentityCounts, kind: WindowKind, amount: number, now: number): void {
    const index = windowIndex(kind, now);
    const w = counts.windows[kind];
    if (w && w.index === index) w.count += amount;
    else counts.windows[kind] = { index, count: amount };
  }
}

/** The refusal when the shared quota store did not answer: retryable, and not a quota verdict. */
export const QUOTA_STORE_UNAVAILABLE: SubmitError = Object.freeze({
  code: ErrorCode.OwnerUnavailable,
  message: "the quota store cannot be reached: retry",
  retryable: true,
  retryAfterMs: 1000,
});

/** The refusal for a quota answer: `quota_exceeded` naming the limit, with when to retry. */
export function quotaError(answer: Extract<QuotaAnswer, { ok: false }>): SubmitError {
  return { code: ErrorCode.QuotaExceeded, message: `this identity is over its ${answer.limit} quota`, retryable: true, retryAfterMs: answer.retryAfterMs, limit: answer.limit };
}
