// Baseline: the `ws` package doing the least a token streamer can, started as a child by the bench.
import type { Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { BATCH_FRAMES, HIGH_WATER_BYTES, TokenTurn, YIELD_FRAMES, parseGo } from "./token-script.js";

class Stream {
  private turn: TokenTurn | null = null;
  private turns = 0;
  private seq = 0;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
  ) {
    socket.on("drain", this.pump);
  }

  start(tokens: number): void {
    if (this.turn) return;
    this.turn = new TokenTurn(`t${++this.turns}`, tokens, this.seq);
    this.pump();
  }

  /** Batches share one cork of the TCP socket, so each becomes a single writev. */
  pump = (): void => {
    const turn = this.turn;
    if (!turn || this.ws.readyState !== this.ws.OPEN) return;
    let written = 0;
    while (!turn.done) {
      if (this.socket.writableLength > HIGH_WATER_BYTES) return;
      if (written >= YIELD_FRAMES) {
        setImmediate(this.pump);
        return;
      }
      this.socket.cork();
      for (let i = 0; i < BATCH_FRAMES && !turn.done; i++) this.ws.send(turn.nextFrame());
      this.socket.uncork();
      written += BATCH_FRAMES;
    }
    this.ws.send(turn.endFrame());
    this.seq = turn.lastSeq;
    this.turn = null;
  };
}

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 16 * 1024 });
wss.on("connection", (ws, req) => {
  const stream = new Stream(ws, req.socket);
  ws.on("message", (data) => {
    const tokens = parseGo(String(data));
    if (tokens !== null) stream.start(tokens);
  });
});
wss.on("listening", () => {
  const address = wss.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ listening: port, nativeUws: false })}\n`);
});
process.once("SIGTERM", () => process.exit(0));
