// `agentwire chat`: a terminal client on @agentwire/client. With text, one turn; without, a line-by-line
// conversation where Ctrl-C cancels the running turn and a second Ctrl-C (or one with nothing running) exits.
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { AgentwireClient, type AgentwireError, type Turn } from "@agentwire/client";

export interface ChatOptions {
  url: string;
  /** One input, then exit; without it, each input line is a turn. */
  text?: string;
  /** Print every server message as received (true) or only the reply text. */
  raw: boolean;
  input: NodeJS.ReadableStream;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Where a Ctrl-C arrives from (the process). */
  signals: NodeJS.EventEmitter;
}

/** `localhost:8080`, `http://host`, `ws://host/prefix` -> the HTTP base URL the client wants. */
export function chatBaseUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  return withScheme.replace(/^ws(s?):\/\//i, "http$1://").replace(/\/+$/, "");
}

export async function chat(options: ChatOptions): Promise<number> {
  const { out, err } = options;
  // `agentwire chat ... | head`: a closed pipe ends the program quietly.
  let piped = false;
  const onPipeError = (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    piped = true;
    process.exit(0);
  };
  out.on("error", onPipeError);
  const write = (text: string) => {
    if (!piped) out.write(text);
  };

  const client = new AgentwireClient({ url: chatBaseUrl(options.url), WebSocket, store: null, connectAttempts: 3, reconnect: { baseMs: 200, maxMs: 2000 } });
  if (options.raw) client.on("message", (m) => write(`${JSON.stringify(m)}\n`));
  try {
    await client.connect();
  } catch (e) {
    const error = e as AgentwireError;
    err.write(`agentwire chat: cannot start a session at ${chatBaseUrl(options.url)}: ${error.code ? `${error.code}: ` : ""}${error.message}\n`);
    return 1;
  }
  client.on("state", (s) => {
    if (s.status === "reconnecting") err.write(`[reconnecting: ${s.reason?.code ?? ""} ${s.reason?.message ?? ""}]\n`);
    if (s.status === "closed" && s.reason && s.reason.code !== 1000) err.write(`[closed: ${s.reason.code} ${s.reason.message}]\n`);
  });

  let running: Turn | null = null;
  const runTurn = async (text: string): Promise<boolean> => {
    const turn = client.send(text);
    running = turn;
    if (!options.raw) turn.on("text", write);
    turn.on("event", (e) => {
      if (e.type === "error") err.write(`\n[error ${e.code}: ${e.message}]`);
    });
    try {
      const result = await turn.done;
      if (!options.raw) write(`\n[${result.status}: ${result.reason}]\n`);
      return result.status === "completed";
    } catch (e) {
      const error = e as AgentwireError;
      err.write(`[not sent: ${error.code}: ${error.message}${error.field ? ` (field ${error.field})` : ""}]\n`);
      return false;
    } finally {
      running = null;
    }
  };

  if (options.text !== undefined) {
    const onSigint = () => void running?.cancel().catch(() => undefined);
    options.signals.on("SIGINT", onSigint);
    const ok = await runTurn(options.text);
    options.signals.off("SIGINT", onSigint);
    client.close();
    return ok ? 0 : 1;
  }

  // A conversation: one turn per line, in order; Ctrl-C cancels what runs, or exits when nothing does.
  const lines = createInterface({ input: options.input, terminal: false });
  const tty = (options.input as { isTTY?: boolean }).isTTY === true;
  const prompt = () => tty && !options.raw && write("> ");
  prompt();
  let exit: (() => void) | null = null;
  const exited = new Promise<void>((resolve) => (exit = resolve));
  let lastInterrupt = 0;
  const onSigint = () => {
    const now = Date.now();
    if (running && now - lastInterrupt > 1500) {
      lastInterrupt = now;
      err.write("\n[cancelling: Ctrl-C again to exit]\n");
      void running.cancel().catch(() => undefined);
      return;
    }
    exit?.();
  };
  options.signals.on("SIGINT", onSigint);
  let failures = 0;
  const queue: string[] = [];
  let busy = false;
  let inputEnded = false;
  const next = async () => {
    if (busy) return;
    busy = true;
    while (queue.length > 0) {
      if (!(await runTurn(queue.shift() as string))) failures++;
      prompt();
    }
    busy = false;
    if (inputEnded) exit?.();
  };
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    queue.push(line);
    void next();
  });
  lines.on("close", () => {
    inputEnded = true;
    if (!busy) exit?.();
  });
  await exited;
  options.signals.off("SIGINT", onSigint);
  lines.close();
  client.close();
  return failures === 0 ? 0 : 1;
}
