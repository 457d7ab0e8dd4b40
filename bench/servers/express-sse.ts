// Peer: a hand-rolled Express SSE endpoint streaming the bare servers' token frames, one `res.write` per event, started as a child by the bench.
// Its routes copy agentwire's shape (GET .../events, POST .../messages), so the bench's SSE load client drives both alike.
import type { ServerResponse } from "node:http";
import express from "express";
import { TokenTurn, YIELD_FRAMES } from "./token-script.js";

/** agentwire's default SSE heartbeat interval (AGENTWIRE_SSE_HEARTBEAT_MS): an idle stream of either holds one timer. */
const HEARTBEAT_MS = 15_000;

class Stream {
  private turn: TokenTurn | null = null;
  private turns = 0;
  private seq = 0;
  closed = false;

  constructor(private readonly res: ServerResponse) {}

  start(tokens: number): void {
    if (this.turn || this.closed) return;
    this.turn = new TokenTurn(`t${++this.turns}`, tokens, this.seq);
    this.pump();
  }

  /** `id:` and `data:` lines per event; a write answered false waits for the response's drain, as Node's docs say. */
  pump = (): void => {
    const turn = this.turn;
    if (!turn || this.closed) return;
    const res = this.res;
    let written = 0;
    while (!turn.done) {
      if (written >= YIELD_FRAMES) {
        setImmediate(this.pump);
        return;
      }
      const token = turn.nextToken();
      written++;
      if (!res.write(`id: ${token.seq}\ndata: ${JSON.stringify(token)}\n\n`)) {
        res.once("drain", this.pump);
        return;
      }
    }
    const end = turn.end();
    res.write(`id: ${end.seq}\ndata: ${JSON.stringify(end)}\n\n`);
    this.seq = turn.lastSeq;
    this.turn = null;
  };
}

const streams = new Map<string, Stream>();
const app = express();
app.use(express.json());

app.get("/v1/sessions/:id/events", (req, res) => {
  const id = req.params.id;
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" });
  const stream = new Stream(res);
  streams.set(id, stream);
  res.write(`data: ${JSON.stringify({ type: "session", sessionId: id })}\n\n`);
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), HEARTBEAT_MS);
  res.on("close", () => {
    stream.closed = true;
    clearInterval(heartbeat);
    if (streams.get(id) === stream) streams.delete(id);
  });
});

app.post("/v1/sessions/:id/messages", (req, res) => {
  const body = req.body as { go?: unknown } | undefined;
  const stream = streams.get(req.params.id);
  if (!stream || typeof body?.go !== "number") {
    res.status(404).json({ error: "no such stream or no go" });
    return;
  }
  stream.start(body.go);
  res.status(202).end();
});

const server = app.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ listening: port, nativeUws: false })}\n`);
});
process.once("SIGTERM", () => process.exit(0));
