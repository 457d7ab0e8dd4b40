// Peer: Socket.IO 4 streaming the bare servers' token frames, one `socket.emit("t", frame)` per token, started as a child by the bench.
// `node socketio.js ws` runs it on its default engine (node:http and the ws package), `node socketio.js uws` on uWebSockets.js (`io.attachApp`).
import { createServer } from "node:http";
import { Server, type Socket } from "socket.io";
import { isNativeUws, uws } from "../../src/transports/uws.js";
import { BATCH_FRAMES, HIGH_WATER_BYTES, TokenTurn, YIELD_FRAMES } from "./token-script.js";

const ENGINE = process.argv[2] === "uws" ? "uws" : "ws";

/**
 * Packets held in engine.io's write buffer above which a stream waits (the ws engine): about
 * HIGH_WATER_BYTES of token packets.
 */
const HIGH_WATER_PACKETS = 1024;

/** What the streams read of engine.io's connection: neither field is public API, but nothing else tells a sender it is ahead. */
interface EngineConn {
  writeBuffer: unknown[];
  transport: { socket?: { getBufferedAmount?: () => number } };
  on(event: "drain", listener: () => void): void;
  off(event: "drain", listener: () => void): void;
}

class Stream {
  private turn: TokenTurn | null = null;
  private turns = 0;
  private seq = 0;
  private readonly conn: EngineConn;

  constructor(private readonly socket: Socket) {
    this.conn = socket.conn as unknown as EngineConn;
  }

  start(tokens: number): void {
    if (this.turn) return;
    this.turn = new TokenTurn(`t${++this.turns}`, tokens, this.seq);
    this.pump();
  }

  /**
   * Emits batches until the connection holds too much. Socket.IO has no backpressure API: on the ws
   * engine the packets wait in engine.io's write buffer while the transport is busy, and its `drain`
   * (the buffer handed on) resumes the stream; engine.io's uWS transport writes at once and reports no
   * drain, so the stream checks the uWS socket's buffered amount and looks again after 1 ms.
   */
  pump = (): void => {
    const turn = this.turn;
    if (!turn || !this.socket.connected) return;
    let written = 0;
    while (!turn.done) {
      if (this.backedUp()) return;
      if (written >= YIELD_FRAMES) {
        setImmediate(this.pump);
        return;
      }
      for (let i = 0; i < BATCH_FRAMES && !turn.done; i++) this.socket.emit("t", turn.nextToken());
      written += BATCH_FRAMES;
    }
    this.socket.emit("t", turn.end());
    this.seq = turn.lastSeq;
    this.turn = null;
  };

  private backedUp(): boolean {
    if (ENGINE === "ws") {
      if (this.conn.writeBuffer.length < HIGH_WATER_PACKETS) return false;
      this.conn.on("drain", this.onDrain);
      return true;
    }
    const buffered = this.conn.transport.socket?.getBufferedAmount?.() ?? 0;
    if (buffered <= HIGH_WATER_BYTES) return false;
    setTimeout(this.pump, 1);
    return true;
  }

  private onDrain = (): void => {
    this.conn.off("drain", this.onDrain);
    this.pump();
  };

  closed(): void {
    this.turn = null;
    this.conn.off("drain", this.onDrain);
  }
}

function serve(io: Server): void {
  io.on("connection", (socket) => {
    const stream = new Stream(socket);
    socket.on("go", (tokens: unknown) => {
      if (typeof tokens === "number" && Number.isInteger(tokens) && tokens > 0) stream.start(tokens);
    });
    socket.on("disconnect", () => stream.closed());
  });
}

const ready = (port: number, nativeUws: boolean) => process.stdout.write(`${JSON.stringify({ listening: port, nativeUws })}\n`);

if (ENGINE === "uws") {
  const app = uws.App();
  const io = new Server();
  io.attachApp(app);
  serve(io);
  app.listen("127.0.0.1", 0, (socket) => {
    if (!socket) {
      process.stderr.write("socketio (uws): cannot listen\n");
      process.exit(1);
    }
    ready(uws.us_socket_local_port(socket), isNativeUws());
  });
} else {
  const httpServer = createServer();
  serve(new Server(httpServer));
  httpServer.listen(0, "127.0.0.1", () => {
    const address = httpServer.address();
    ready(typeof address === "object" && address !== null ? address.port : 0, false);
  });
}
process.once("SIGTERM", () => process.exit(0));
