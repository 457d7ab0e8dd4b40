// `agentwire chat`: creates a session on a running server, sends one input and prints every frame.
import WebSocket from "ws";
import type { ServerMessage } from "@agentwire/protocol";

export interface ChatOptions {
  url: string;
  text: string;
  /** Print raw frames (true) or only the reply text. */
  raw: boolean;
  out: NodeJS.WritableStream;
}

export async function chat(options: ChatOptions): Promise<number> {
  const base = options.url.replace(/\/$/, "");
  const res = await fetch(`${base}/v1/sessions`, { method: "POST" }).catch((err: Error) => err);
  if (res instanceof Error) {
    options.out.write(`cannot reach ${base}: ${res.message}\n`);
    return 1;
  }
  if (res.status !== 201) {
    options.out.write(`cannot create a session: HTTP ${res.status} ${await res.text()}\n`);
    return 1;
  }
  const { sessionId, token } = (await res.json()) as { sessionId: string; token: string };
  const wsUrl = `${base.replace(/^http/, "ws")}/v1/sessions/${sessionId}/ws`;
  const ws = new WebSocket(wsUrl, ["agentwire.v1", `bearer.${token}`]);
  return new Promise((resolve) => {
    ws.on("open", () => ws.send(JSON.stringify({ type: "input", id: "m1", text: options.text })));
    ws.on("message", (data) => {
      const frame = String(data);
      const message = JSON.parse(frame) as ServerMessage;
      if (options.raw) options.out.write(`${frame}\n`);
      else if (message.type === "token") options.out.write(message.text);
      if (message.type === "turn_end") {
        if (!options.raw) options.out.write(`\n[${message.status}: ${message.reason}]\n`);
        ws.close();
        resolve(message.status === "completed" ? 0 : 1);
      }
    });
    ws.on("error", (err) => {
      options.out.write(`websocket error: ${err.message}\n`);
      resolve(1);
    });
  });
}
