// What the bare baseline servers stream: agentwire-shaped token frames for a client's "go N", then a turn_end.

/** Word tokens with a leading space, about as long as the demo agent's. */
const WORDS = " tokens flow to the reader one small frame at a time while the server keeps pace with its socket".split(/(?= )/);

/** The token count asked for by a "go N" message, or null for anything else. */
export function parseGo(text: string): number | null {
  const match = /^go (\d+)$/.exec(text.trim());
  return match ? Number(match[1]) : null;
}

/**
 * One turn of one connection. The baselines serialize each frame with JSON.stringify, as any server
 * streaming arbitrary model text must; that keeps them honest without adding anything else.
 */
export class TokenTurn {
  private sent = 0;

  constructor(
    readonly turn: string,
    private readonly total: number,
    private seq: number,
  ) {}

  get done(): boolean {
    return this.sent >= this.total;
  }

  get lastSeq(): number {
    return this.seq;
  }

  nextFrame(): string {
    return JSON.stringify(this.nextToken());
  }

  endFrame(): string {
    return JSON.stringify(this.end());
  }

  /** The next token frame as an object, for servers whose library serializes it (Socket.IO's emit). */
  nextToken(): TokenFrame {
    const text = WORDS[this.sent++ % WORDS.length] as string;
    return { type: "token", seq: ++this.seq, turn: this.turn, text };
  }

  end(): TurnEndFrame {
    return { type: "turn_end", seq: ++this.seq, turn: this.turn, status: "completed", reason: "stop" };
  }
}

export interface TokenFrame {
  type: "token";
  seq: number;
  turn: string;
  text: string;
}

export interface TurnEndFrame {
  type: "turn_end";
  seq: number;
  turn: string;
  status: "completed";
  reason: "stop";
}

/** Frames written per cork; the socket's buffered amount is checked between batches. */
export const BATCH_FRAMES = 64;
/** Above this many buffered bytes a stream waits for drain (agentwire's default soft limit). */
export const HIGH_WATER_BYTES = 64 * 1024;
/** Frames one stream writes before yielding, so concurrent streams share the event loop. */
export const YIELD_FRAMES = 1024;
