// One admission path for every stream link (WebSocket or SSE): per-IP connect rate, the connection cap over both, resume positions.
import { ErrorCode } from "@agentwire/protocol";
import type { KeyedRateLimiter } from "../engine/index.js";
import type { ClientAddress } from "./client-address.js";
import type { ErrorBody } from "@agentwire/protocol";
import type { RequestInfo } from "./http-util.js";
import { queryParam } from "./http-util.js";

/** Links held right now, by transport; the connection cap counts them together. */
export interface ConnectionStats {
  websockets: number;
  sseStreams: number;
}

export interface AdmissionOptions {
  /** WebSocket + SSE links held at once. */
  maxConnections: number;
  connectLimiter: KeyedRateLimiter;
  /** Who a request counts as for the per-IP limit (the peer, or the client a trusted proxy names). */
  clientAddress: ClientAddress;
}

export type Refusal = { status: number; error: ErrorBody };

/** Why a new stream link may not open, or null when it may: the per-IP rate first, then the cap. */
export function admitLink(info: RequestInfo, stats: ConnectionStats, options: AdmissionOptions): Refusal | null {
  const waitMs = options.connectLimiter.take(options.clientAddress.of(info.ip, info.headers["x-forwarded-for"]));
  if (waitMs > 0) return { status: 429, error: { code: ErrorCode.RateLimited, message: "too many connection attempts", retryable: true, retryAfterMs: waitMs } };
  if (stats.websockets + stats.sseStreams >= options.maxConnections) {
    return { status: 503, error: { code: ErrorCode.Overloaded, message: "connection limit reached", retryable: true, retryAfterMs: 1000 } };
  }
  return null;
}

export type Position = { ok: true; afterSeq: number | undefined } | { ok: false; refusal: Refusal };

/** A seq as clients write it: decimal digits only (no `0x10`, `1e3` or sign), a safe integer. */
export function parseSeq(raw: string | undefined): number | undefined | null {
  const value = raw?.trim();
  if (!value) return undefined;
  const seq = Number(value);
  return /^\d+$/.test(value) && Number.isSafeInteger(seq) ? seq : null;
}

/**
 * Where a stream starts: the first of `candidates` (name, raw value) that is present. A value that is
 * not a seq is refused with 400 `invalid_message` naming it.
 */
export function streamPosition(candidates: readonly [string, string | undefined][]): Position {
  for (const [field, raw] of candidates) {
    const seq = parseSeq(raw);
    if (seq === undefined) continue;
    if (seq === null) {
      return { ok: false, refusal: { status: 400, error: { code: ErrorCode.InvalidMessage, message: `${field} must be a non-negative integer seq`, field, retryable: false } } };
    }
    return { ok: true, afterSeq: seq };
  }
  return { ok: true, afterSeq: undefined };
}

/** `?afterSeq=` of a WebSocket URL. */
export function websocketPosition(info: RequestInfo): Position {
  return streamPosition([["afterSeq", queryParam(info.query, "afterSeq")]]);
}

/**
 * Where an SSE stream starts: `Last-Event-ID` (what EventSource sends when it reconnects by itself) wins
 * over `?lastEventId=`, which wins over `?afterSeq=` (the first connect's position, still in the URL on reconnects).
 */
export function ssePosition(info: RequestInfo): Position {
  return streamPosition([
    ["Last-Event-ID", info.headers["last-event-id"]],
    ["lastEventId", queryParam(info.query, "lastEventId")],
    ["afterSeq", queryParam(info.query, "afterSeq")],
  ]);
}
