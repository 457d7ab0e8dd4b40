// Baseline: uWebSockets.js doing the least a token streamer can, started as a child by the bench.
import { isNativeUws, uws, type WebSocket } from "../../src/transports/uws.js";
import { BATCH_FRAMES, HIGH_WATER_BYTES, TokenTurn, YIELD_FRAMES, parseGo } from "./token-script.js";

class Stream {
  turn: TokenTurn | null = null;
  closed = false;
  private turns = 0;
  private seq = 0;

  constructor(private readonly ws: WebSocket<UserData>) {}

  start(tokens: number): void {
    if (this.turn) return;
    this.turn = new TokenTurn(`t${++this.turns}`, tokens, this.seq);
    this.pump();
  }

  /** Writes corked batches until the socket pushes back; drain or the next tick resumes it. */
  pump = (): void => {
    const turn = this.turn;
    if (!turn || this.closed) return;
    const ws = this.ws;
    let written = 0;
    while (!turn.done) {
      if (ws.getBufferedAmount() > HIGH_WATER_BYTES) return;
      if (written >= YIELD_FRAMES) {
        setImmediate(this.pump);
        return;
      }
      ws.cork(() => {
        for (let i = 0; i < BATCH_FRAMES && !turn.done; i++) ws.send(turn.nextFrame(), false, false);
      });
      written += BATCH_FRAMES;
    }
    ws.send(turn.endFrame(), false, false);
    this.seq = turn.lastSeq;
    this.turn = null;
  };
}

interface UserData {
  stream?: Stream;
}

const app = uws.App();
app.ws<UserData>("/*", {
  compression: uws.DISABLED,
  maxPayloadLength: 16 * 1024,
  idleTimeout: 960,
  maxBackpressure: 64 * 1024 * 1024,
  open(ws) {
    ws.getUserData().stream = new Stream(ws);
  },
  message(ws, data) {
    const tokens = parseGo(Buffer.from(data).toString("utf8"));
    if (tokens !== null) ws.getUserData().stream?.start(tokens);
  },
  drain(ws) {
    ws.getUserData().stream?.pump();
  },
  close(ws) {
    const stream = ws.getUserData().stream;
    if (stream) stream.closed = true;
  },
});
app.listen("127.0.0.1", 0, (socket) => {
  if (!socket) {
    process.stderr.write("bare-uws: cannot listen\n");
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ listening: uws.us_socket_local_port(socket), nativeUws: isNativeUws() })}\n`);
});
process.once("SIGTERM", () => process.exit(0));
