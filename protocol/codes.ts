// Stable codes shared by server and clients: error codes and WebSocket close codes.

/** Error codes carried by `error` frames and HTTP error bodies. Stable strings: match on these, never on message text. */
export const ErrorCode = {
  /** The frame or body is not valid JSON. */
  InvalidJson: "invalid_json",
  /** JSON, but not a valid client message; `field` names the offending path. */
  InvalidMessage: "invalid_message",
  /** `type` is not one the server knows. */
  UnknownType: "unknown_type",
  /** Binary frames are not part of the protocol. */
  BinaryNotSupported: "binary_not_supported",
  /** The frame or body exceeds the configured maximum payload. */
  PayloadTooLarge: "payload_too_large",
  /** Buffered (non-final) input would exceed the maximum input size. */
  InputTooLarge: "input_too_large",
  /** Missing or malformed credentials. */
  Unauthorized: "unauthorized",
  /** Credentials valid in form, but not for this session; or a `configure` the operator's policy refuses (`field` names what). */
  Forbidden: "forbidden",
  /** A browser page on an origin outside `AGENTWIRE_ALLOWED_ORIGINS`. */
  OriginNotAllowed: "origin_not_allowed",
  SessionNotFound: "session_not_found",
  TurnNotFound: "turn_not_found",
  /** A final `input` arrived while a turn runs and `interrupt` was not set. */
  TurnActive: "turn_active",
  /** `tool_result` for a call that is not waiting for one. */
  ToolCallNotFound: "tool_call_not_found",
  /** Too many messages, connections, sessions or turns; see `retryAfterMs`. */
  RateLimited: "rate_limited",
  /** An identity's quota is used up; `limit` names which (see `QuotaLimit`), `retryAfterMs` when to try again. */
  QuotaExceeded: "quota_exceeded",
  /** The admission queue is full: the node cannot take another waiting turn; retry after `retryAfterMs`. */
  QueueFull: "queue_full",
  /** A queued turn waited longer than the queue timeout without a free slot; the upstream was never called. */
  QueueTimeout: "queue_timeout",
  /** The server is at its session or connection limit. */
  Overloaded: "overloaded",
  /** The agent's upstream (model provider) failed. */
  UpstreamError: "upstream_error",
  /** The upstream is overloaded or rate-limiting us; retryable. */
  UpstreamOverloaded: "upstream_overloaded",
  /** The upstream did not answer in time (connect, first byte, or idle gap). */
  UpstreamTimeout: "upstream_timeout",
  /** A client-executed tool did not answer in time. */
  ToolTimeout: "tool_timeout",
  /** A server-side tool threw. */
  ToolFailed: "tool_failed",
  /** The owner of the session went away while the turn ran. */
  OwnerLost: "owner_lost",
  /** The node that owns the session did not answer in time; retry shortly. */
  OwnerUnavailable: "owner_unavailable",
  /** The server is shutting down and starts no new turns or sessions; retry after `retryAfterMs` (another node will answer). */
  ServerDraining: "server_draining",
  MethodNotAllowed: "method_not_allowed",
  UnsupportedMediaType: "unsupported_media_type",
  NotFound: "not_found",
  Internal: "internal_error",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * WebSocket close codes.
 *
 * - 1000 normal, 1001 going away (server shutdown: reconnect), 1009 frame too big (do not resend it).
 * - 4000-4399: **reconnect** (with backoff), resuming from the last `seq` seen.
 * - 4400-4499: **do not reconnect** without changing something (credentials, session).
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  MessageTooBig: 1009,
  InternalError: 1011,
  /** The client read too slowly and the outbox hit its hard cap. Reconnect and resume. */
  SlowConsumer: 4000,
  /** The server is draining (deploy, shutdown). Reconnect, possibly to another node. */
  ServerDraining: 4001,
  /** The session was attached again elsewhere with `exclusive` or the node lost it. Reconnect. */
  Replaced: 4002,
  /** No traffic from the client within the idle timeout. Reconnect. */
  IdleTimeout: 4003,
  /** The session is held by another node that could not be reached just now. Reconnect with backoff. */
  OwnerUnavailable: 4004,
  /** The session's identity holds as many links as its quota allows. Reconnect with backoff (after one closes). */
  QuotaExceeded: 4005,
  /** Terminal: the session token was missing or wrong. */
  Unauthorized: 4401,
  /** Terminal: the session does not exist (or expired). Create a new one. */
  SessionNotFound: 4404,
  /** Terminal: the session was deleted. */
  SessionEnded: 4410,
  /** Terminal: the client broke the protocol badly enough that continuing is unsafe. */
  ProtocolViolation: 4422,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** True when a client should reconnect (and resume) after this close code. */
export function shouldReconnect(code: number): boolean {
  if (code === CloseCode.Normal || code === CloseCode.MessageTooBig) return false;
  if (code >= 4400 && code <= 4499) return false;
  return true;
}

/** How each error code is answered: its HTTP status, whether retrying can help, and the close code where it ends a WebSocket. */
export interface ErrorInfo {
  /** The HTTP status an HTTP route answers with. Turn errors (upstream, tools) are events, not answers: theirs is the gateway status a poller would see. */
  status: number;
  /** Whether the same request may succeed later; `upstream_error` carries its own on each event. */
  retryable: boolean;
  /** The close code when this error ends a WebSocket link. */
  close?: CloseCode;
}

/** The one table the transports map error codes through. The engine returns codes only. */
export const ERRORS: Readonly<Record<ErrorCode, ErrorInfo>> = {
  invalid_json: { status: 400, retryable: false },
  invalid_message: { status: 400, retryable: false },
  unknown_type: { status: 400, retryable: false },
  binary_not_supported: { status: 400, retryable: false },
  payload_too_large: { status: 413, retryable: false, close: CloseCode.MessageTooBig },
  input_too_large: { status: 413, retryable: false },
  unauthorized: { status: 401, retryable: false, close: CloseCode.Unauthorized },
  forbidden: { status: 403, retryable: false, close: CloseCode.Unauthorized },
  origin_not_allowed: { status: 403, retryable: false, close: CloseCode.Unauthorized },
  session_not_found: { status: 404, retryable: false, close: CloseCode.SessionNotFound },
  turn_not_found: { status: 404, retryable: false },
  turn_active: { status: 409, retryable: true },
  tool_call_not_found: { status: 404, retryable: false },
  rate_limited: { status: 429, retryable: true },
  quota_exceeded: { status: 429, retryable: true, close: CloseCode.QuotaExceeded },
  queue_full: { status: 429, retryable: true },
  queue_timeout: { status: 503, retryable: true },
  overloaded: { status: 503, retryable: true },
  upstream_error: { status: 502, retryable: false },
  upstream_overloaded: { status: 503, retryable: true },
  upstream_timeout: { status: 504, retryable: true },
  tool_timeout: { status: 504, retryable: false },
  tool_failed: { status: 502, retryable: false },
  owner_lost: { status: 503, retryable: true },
  owner_unavailable: { status: 503, retryable: true, close: CloseCode.OwnerUnavailable },
  server_draining: { status: 503, retryable: true, close: CloseCode.ServerDraining },
  method_not_allowed: { status: 405, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  not_found: { status: 404, retryable: false },
  internal_error: { status: 500, retryable: true, close: CloseCode.InternalError },
};

/**
 * The per-identity limits a `quota_exceeded` error names in its `limit` field. Held limits count what exists
 * now (live sessions, open links, accepted turns); the others count within a fixed window (the minute, the UTC day).
 */
export const QuotaLimit = {
  Sessions: "sessions",
  Connections: "connections",
  Turns: "turns",
  SessionsPerMinute: "sessions_per_minute",
  TokensPerMinute: "tokens_per_minute",
  TokensPerDay: "tokens_per_day",
} as const;
export type QuotaLimit = (typeof QuotaLimit)[keyof typeof QuotaLimit];
