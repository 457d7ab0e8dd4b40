// One connection to a session, over WebSocket or over SSE + POST: server messages in, client messages out.
// The client owns everything above (resume, dedup, reconnect); a link only carries frames and reports how it ended.
import type { ClientMessage, ServerMessage } from "@agentwire/protocol";
import { ERRORS, type ErrorCode } from "@agentwire/protocol/codes";
import { SseParser } from "@agentwire/protocol/sse";

export type TransportName = "websocket" | "sse";

export interface LinkEnd {
  /** The WebSocket close code, the code of an SSE stream's `: close` comment, or one derived from an HTTP refusal. */
  code: number;
  reason: string;
  /** False when the link never opened (connection refused, upgrade blocked, HTTP refusal). */
  opened: boolean;
  /** From an HTTP refusal's `retryAfterMs`. */
  retryAfterMs?: number;
}

export interface LinkHandlers {
  /** Every server message, answers included (ack, error, pong: over SSE made from the POST's response). */
  frame(message: ServerMessage): void;
  /** Bytes arrived (frames, SSE comments): the link is alive. */
  activity(): void;
  /** Called once, whoever ended the link. */
  ended(end: LinkEnd): void;
}

export interface Link {
  readonly transport: TransportName;
  send(message: ClientMessage): void;
  /** Ends the link; `ended` still follows. */
  close(): void;
}

/**
 * The parts of a WebSocket the client uses: the browser's, Node 22's, or the `ws` package's. Handler
 * parameters are typed loosely (`never`) so each implementation's own event types fit.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Close code for "closed abnormally" (no close frame): a dead network, a refused connection. */
export const ABNORMAL = 1006;
/** "Try again later": an HTTP refusal that is retryable but has no close code of its own. */
const TRY_AGAIN_LATER = 1013;

export function openWebSocket(WS: WebSocketConstructor, url: string, token: string, handlers: LinkHandlers): Link {
  // The token rides in a subprotocol, so it stays out of URLs and the access logs that record them.
  const ws = new WS(url, ["agentwire.v1", `bearer.${token}`]);
  let opened = false;
  let done = false;
  const end = (code: number, reason: string) => {
    if (done) return;
    done = true;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    handlers.ended({ code, reason, opened });
  };
  ws.onopen = () => {
    opened = true;
  };
  ws.onmessage = (event: { data: unknown }) => {
    handlers.activity();
    if (typeof event.data !== "string") return;
    let message: ServerMessage;
    try {
      message = JSON.parse(event.data) as ServerMessage;
    } catch {
      return;
    }
    handlers.frame(message);
  };
  ws.onclose = (event: { code: number; reason: string }) => end(event.code, event.reason);
  ws.onerror = () => {
    // A close event follows an error in browsers; `ws` may not send one for a refused connection.
    if (!opened) setTimeout(() => end(ABNORMAL, "connection failed"), 0);
  };
  return {
    transport: "websocket",
    send(message) {
      if (ws.readyState === 1) ws.send(JSON.stringify(message));
    },
    close() {
      try {
        ws.close(1000, "client closed");
      } catch {
        // Not open yet in some implementations: ending the link is what matters.
      }
      end(1000, "client closed");
    },
  };
}

interface ErrorBodyLike {
  error?: { code?: string; message?: string; field?: string; retryable?: boolean; retryAfterMs?: number };
}

/** A close code for an HTTP refusal of the event stream: the code's own where the error table has one. */
function refusalEnd(status: number, body: ErrorBodyLike | null): LinkEnd {
  const code = body?.error?.code as ErrorCode | undefined;
  const info = code ? ERRORS[code] : undefined;
  const reason = code ?? `HTTP ${status}`;
  const retryAfterMs = body?.error?.retryAfterMs;
  const close = info?.close ?? (info?.retryable || status >= 500 || status === 429 ? TRY_AGAIN_LATER : ABNORMAL);
  return { code: close, reason, opened: false, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

export interface SseUrls {
  events: string;
  messages: string;
}

export function openSse(fetchFn: typeof fetch, urls: SseUrls, token: string, handlers: LinkHandlers): Link {
  const controller = new AbortController();
  const authorization = `Bearer ${token}`;
  let done = false;
  let opened = false;
  const end = (e: LinkEnd) => {
    if (done) return;
    done = true;
    controller.abort();
    handlers.ended(e);
  };

  void (async () => {
    let res: Response;
    try {
      res = await fetchFn(urls.events, { headers: { authorization, accept: "text/event-stream" }, cache: "no-store", signal: controller.signal });
    } catch {
      end({ code: ABNORMAL, reason: "connection failed", opened: false });
      return;
    }
    if (res.status !== 200 || !res.body) {
      end(refusalEnd(res.status, (await res.json().catch(() => null)) as ErrorBodyLike | null));
      return;
    }
    opened = true;
    let closeCode = ABNORMAL;
    let closeReason = "stream ended";
    // The server names why it ends a stream in a final `: close <code> <reason>` comment.
    const parser = new SseParser({
      maxChars: Number.MAX_SAFE_INTEGER,
      onComment: (text) => {
        const m = /^ ?close (\d+) ?(.*)$/.exec(text);
        if (m) [closeCode, closeReason] = [Number(m[1]), m[2] as string];
      },
      onEvent: (event) => {
        try {
          handlers.frame(JSON.parse(event.data) as ServerMessage);
        } catch {
          // Not JSON: not ours.
        }
      },
    });
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done: finished, value } = await reader.read();
        if (finished) break;
        handlers.activity();
        parser.push(value);
      }
    } catch {
      // Aborted or cut: the end below says so.
    }
    end({ code: closeCode, reason: closeReason, opened: true });
  })();

  // POSTs go one at a time, so messages arrive in the order they were sent (partial inputs concatenate).
  const queue: ClientMessage[] = [];
  let posting = false;
  const pump = async () => {
    if (posting) return;
    posting = true;
    while (queue.length > 0 && !done) {
      const message = queue[0] as ClientMessage;
      let res: Response;
      try {
        res = await fetchFn(urls.messages, {
          method: "POST",
          headers: { authorization, "content-type": "application/json" },
          body: JSON.stringify(message),
          signal: controller.signal,
        });
      } catch {
        // The network is gone (or the link closed): the client resends what was not answered on its next link.
        end({ code: ABNORMAL, reason: "message could not be sent", opened });
        break;
      }
      queue.shift();
      const body = (await res.json().catch(() => null)) as (ErrorBodyLike & { turn?: string }) | ServerMessage | null;
      const id = message.id;
      if (res.status === 200 && body && "type" in body) handlers.frame(body);
      else if (res.status < 300 && id) handlers.frame(body && "turn" in body && body.turn ? { type: "ack", id, turn: body.turn } : { type: "ack", id });
      else if (res.status >= 300) {
        const e = (body as ErrorBodyLike | null)?.error ?? {};
        const frame: ServerMessage = { type: "error", code: e.code ?? "internal_error", message: e.message ?? `HTTP ${res.status}`, retryable: e.retryable ?? res.status >= 500 };
        if (e.field !== undefined) frame.field = e.field;
        if (e.retryAfterMs !== undefined) frame.retryAfterMs = e.retryAfterMs;
        if (id !== undefined) frame.id = id;
        handlers.frame(frame);
      }
    }
    posting = false;
  };

  return {
    transport: "sse",
    send(message) {
      queue.push(message);
      void pump();
    },
    close() {
      end({ code: 1000, reason: "client closed", opened });
    },
  };
}
