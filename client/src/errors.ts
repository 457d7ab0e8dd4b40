// The error a client call rejects with: the server's stable code (or one of the client's own), never to be matched by message.
import type { ErrorCode } from "@agentwire/protocol/codes";

/** Codes the client adds to the server's: the client was closed, too many messages wait for a connection, the server could not be reached. */
export type ClientErrorCode = "client_closed" | "queue_full" | "unreachable";

export class AgentwireError extends Error {
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    readonly retryable = false,
    /** The offending field of the message, when the server named one. */
    readonly field?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "AgentwireError";
  }
}
