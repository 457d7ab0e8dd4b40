// Peer: Express with the ws package on its HTTP server, streaming the bare servers' token frames as a hand-rolled server does, started as a child by the bench.
import { createServer } from "node:http";
import type { Socket } from "node:net";
import express from "express";
import { WebSocketServer, type WebSocket } from "ws";
import { BATCH_FRAMES, HIGH_WATER_BYTES, TokenTurn, YIELD_FRAMES, parseGo } from "./token-script.js";

/**
 * One `ws.send(JSON.stringify(token))` per token and nothing clever: no cork around batches (bare ws
 * has one), `bufferedAmount` checked between batches, the socket's drain resumes a stream that waits.
 */
class Stream {
  private turn: TokenTurn | null = null;
  private turns = 0;
  private seq = 0;

  constructor(
    private readonly ws: WebSocket,
    socket: Socket,
  ) {
    socket.on("drain", this.pump);
  }

  start(tokens: number): void {
    if (this.turn) return;
    this.turn = new TokenTurn(`t${++this.turns}`, tokens, this.seq);
    this.pump();
  }

  pump = (): void => {
    const turn = this.turn;
    if (!turn || this.ws.readyState !== this.ws.OPEN) return;
    let written = 0;
    while (!turn.done) {
      if (this.ws.bufferedAmount > HIGH_WATER_BYTES) return;
      if (written >= YIELD_FRAMES) {
        setImmediate(this.pump);
        return;
      }
      for (let i = 0; i < BATCH_FRAMES && !turn.done; i++) this.ws.send(turn.nextFrame());
      written += BATCH_FRAMES;
    }
    this.ws.send(turn.endFrame());
    this.seq = turn.lastSeq;
    this.turn = null;
  };
}

const app = express();
app.get("/health", (_req, res) => {
  res.json({ ok: true });
});
const server = createServer(app);
const wss = new WebSocketServer({ server, path: "/ws" });
wss.on("connection", (ws, req) => {
  const stream = new Stream(ws, req.socket);
  ws.on("message", (data) => {
    const tokens = parseGo(String(data));
    if (tokens !== null) stream.start(tokens);
  });
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ listening: port, nativeUws: false })}\n`);
});
process.once("SIGTERM", () => process.exit(0));
