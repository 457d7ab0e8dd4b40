// The error a client call rejects with: the server's stable code (or one of the client's own), never to be matched by message.
import type { ErrorCode } from "@agentwire/protocol/codes";

/** Codes the client adds to the server's: the client was closed, too many messages wait for a connection, the server could not be reached. */
export type ClientErrorCode = "client_closed" | "outbox_full" | "unreachable";

export class AgentwireError extends Error {
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    readonly retryable = false,
    /** The offending field of the message, when the server named one. */
    readonly field?: string,
    readonly retryAfterMs?: number,
    /** For `quota_exceeded`: the limit the identity is at (`turns`, `tokens_per_day`...). */
    readonly limit?: string,
  ) {
    super(message);
    this.name = "AgentwireError";
  }
}
