// A ChatTransport for the Vercel AI SDK (v5 and later): `useChat` (or `Chat`) talks to an agentwire session through
// an AgentwireClient. Turns become UI message chunks: text, tool input and output (server and client tools, the
// latter run mid-turn by the client's handlers), usage as message metadata, cancel as abort.
// Only types come from `ai`, an optional peer: nothing of it is bundled.
import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";
import type { LoggedEvent } from "@agentwire/protocol";
import type { AgentwireClient } from "./client.js";
import type { AgentwireError } from "./errors.js";
import type { Turn, TurnUsage } from "./turn.js";

/** What each assistant message carries as `metadata`: the agentwire turn, and once it ends its status and usage. */
export interface AgentwireMessageMetadata {
  turn?: string;
  status?: string;
  reason?: string;
  usage?: TurnUsage;
}

export interface AgentwireChatTransportOptions {
  /** The client of the session this chat runs in (one chat per session). */
  client: AgentwireClient;
}

/** The text of a UI message's text parts. */
function textOf(message: UIMessage): string {
  return message.parts.map((p) => (p.type === "text" ? p.text : "")).join("");
}

export class AgentwireChatTransport<M extends UIMessage = UIMessage> implements ChatTransport<M> {
  /** A reconnect replays the turn from its first event: the SDK resets the message it was building. */
  readonly resumeStreamIsReplay = true;
  private readonly client: AgentwireClient;

  constructor(options: AgentwireChatTransportOptions) {
    this.client = options.client;
  }

  async sendMessages(options: Parameters<ChatTransport<M>["sendMessages"]>[0]): Promise<ReadableStream<UIMessageChunk>> {
    await this.client.connect();
    const last = [...options.messages].reverse().find((m) => m.role === "user");
    if (!last) throw new TypeError("agentwire: no user message to send");
    // A new message while a turn runs is barge-in, as in a voice or chat UI.
    const turn = this.client.send(textOf(last), { interrupt: this.client.activeTurn !== null });
    return turnStream(turn, options.abortSignal);
  }

  async reconnectToStream(options: Parameters<ChatTransport<M>["reconnectToStream"]>[0]): Promise<ReadableStream<UIMessageChunk> | null> {
    await this.client.connect();
    const turn = this.client.activeTurn;
    if (turn?.fromStart) return turnStream(turn, options.abortSignal);
    // Joined mid-turn (a reload resumes after the stored position): the text so far comes from the session's
    // snapshot, the rest from the live events after it. Tool calls before the reload are not replayed.
    const snapshot = await this.client.snapshot();
    if (!snapshot.activeTurn) return null;
    const summary = snapshot.turns.find((t) => t.id === snapshot.activeTurn);
    return turnStream(this.client.turn(snapshot.activeTurn), options.abortSignal, { text: summary?.text ?? "", afterSeq: snapshot.lastSeq });
  }

  close(): void {
    this.client.close();
  }
}

/** Per stream: the open text part, if any, and how many there were (each gets its own id). */
interface TextState {
  open: string | null;
  parts: number;
}

/** What a stream that joins a turn late starts from: its text so far, as of `afterSeq` (events up to it are skipped). */
export interface TurnPrefix {
  text: string;
  afterSeq: number;
}

/** The chunks of one turn, from its first event the client holds (or from `prefix`), ending with its end (or its refusal). */
export function turnStream(turn: Turn, abortSignal?: AbortSignal, prefix?: TurnPrefix): ReadableStream<UIMessageChunk> {
  const iterator = turn[Symbol.asyncIterator]();
  const text: TextState = { open: null, parts: 0 };
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    void turn.cancel().catch(() => undefined);
  };
  return new ReadableStream<UIMessageChunk>({
    start(controller) {
      controller.enqueue({ type: "start" });
      if (prefix) {
        controller.enqueue({ type: "message-metadata", messageMetadata: { turn: turn.id ?? undefined } });
        controller.enqueue({ type: "start-step" });
        if (prefix.text) {
          text.open = `${turn.id ?? "turn"}-text-${text.parts++}`;
          controller.enqueue({ type: "text-start", id: text.open });
          controller.enqueue({ type: "text-delta", id: text.open, delta: prefix.text });
        }
      }
      if (abortSignal?.aborted) onAbort();
      else abortSignal?.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      // Until something is enqueued: a pull that enqueues nothing is not called again.
      for (;;) {
        let next: IteratorResult<LoggedEvent>;
        try {
          next = await iterator.next();
        } catch (err) {
          const error = err as AgentwireError;
          controller.enqueue({ type: "error", errorText: `${error.code}: ${error.message}` });
          controller.close();
          return;
        }
        if (next.done) {
          abortSignal?.removeEventListener("abort", onAbort);
          controller.close();
          return;
        }
        // Events up to the prefix's position are in its text already.
        if (prefix && next.value.seq <= prefix.afterSeq) continue;
        const chunks = chunksOf(next.value, turn, text, aborted);
        for (const chunk of chunks) controller.enqueue(chunk);
        if (chunks.length > 0) return;
      }
    },
    cancel() {
      abortSignal?.removeEventListener("abort", onAbort);
    },
  });
}

function chunksOf(event: LoggedEvent, turn: Turn, text: TextState, aborted: boolean): UIMessageChunk[] {
  const out: UIMessageChunk[] = [];
  const closeText = () => {
    if (text.open !== null) out.push({ type: "text-end", id: text.open });
    text.open = null;
  };
  const metadata = (extra: AgentwireMessageMetadata): UIMessageChunk => ({ type: "message-metadata", messageMetadata: { turn: event.turn, ...extra } });
  switch (event.type) {
    case "turn_start":
      out.push(metadata({}), { type: "start-step" });
      break;
    case "token":
      if (text.open === null) {
        text.open = `${event.turn}-text-${text.parts++}`;
        out.push({ type: "text-start", id: text.open });
      }
      out.push({ type: "text-delta", id: text.open, delta: event.text });
      break;
    case "tool": {
      const base = { toolCallId: event.callId, dynamic: true as const, providerExecuted: event.executor === "server" };
      if (event.phase === "start") {
        closeText();
        out.push({ type: "tool-input-start", toolName: event.name, ...base });
      } else if (event.phase === "delta") out.push({ type: "tool-input-delta", toolCallId: event.callId, inputTextDelta: event.argsDelta ?? "" });
      else if (event.phase === "ready") out.push({ type: "tool-input-available", toolName: event.name, input: event.args, ...base });
      else if (event.isError) out.push({ type: "tool-output-error", errorText: typeof event.output === "string" ? event.output : JSON.stringify(event.output), ...base });
      else out.push({ type: "tool-output-available", output: event.output, ...base });
      break;
    }
    case "usage":
      out.push(metadata({ usage: { inputTokens: event.inputTokens, outputTokens: event.outputTokens } }));
      break;
    case "error":
      out.push({ type: "error", errorText: `${event.code}: ${event.message}` });
      break;
    case "turn_end": {
      closeText();
      out.push({ type: "finish-step" });
      const meta: AgentwireMessageMetadata = { turn: event.turn, status: event.status, reason: event.reason };
      if (turn.usage) meta.usage = turn.usage;
      if (event.status === "cancelled" || aborted) out.push({ type: "message-metadata", messageMetadata: meta }, { type: "abort", reason: event.reason });
      else {
        const finishReason = event.status === "completed" ? (event.reason === "max_tokens" ? "length" : "stop") : event.status === "failed" ? "error" : "other";
        out.push({ type: "finish", finishReason, messageMetadata: meta });
      }
      break;
    }
    default:
      break;
  }
  return out;
}
