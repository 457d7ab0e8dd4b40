// Bare-minimum WebSocket framing for load generators: parse unmasked server frames, build masked client frames.
import { randomBytes } from "node:crypto";

export const OP_TEXT = 0x1;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** One whole message: its payload is `buf[start..end)`, valid only during the call. */
export type MessageHandler = (buf: Buffer, start: number, end: number, opcode: number) => void;

/**
 * Incremental parser over socket chunks. A frame split across chunks waits in `held` until it is
 * complete, and is joined once, so big frames arriving in many pieces cost no repeated copying.
 */
export class FrameParser {
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes the held frame needs in total, once its header is readable. */
  private need = 0;
  private fragments: Buffer[] = [];
  private fragmentOp = 0;

  constructor(private readonly onMessage: MessageHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.heldBytes > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes < this.need) return;
      buf = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
    }
    let off = 0;
    const len = buf.length;
    while (true) {
      const total = frameLength(buf, off, len);
      if (total < 0 || off + total > len) break;
      this.frame(buf, off, total);
      off += total;
    }
    if (off < len) {
      const rest = buf.subarray(off);
      const total = frameLength(rest, 0, rest.length);
      // With the header itself cut, any new bytes may complete it: retry on the next chunk.
      this.need = Math.max(total, 0);
      this.held.push(rest);
      this.heldBytes = rest.length;
    }
  }

  private frame(buf: Buffer, off: number, total: number): void {
    const b0 = buf[off] as number;
    const b1 = buf[off + 1] as number;
    if (b1 & 0x80) throw new Error("server sent a masked frame");
    const size = b1 & 0x7f;
    const start = off + (size === 126 ? 4 : size === 127 ? 10 : 2);
    const end = off + total;
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (fin && opcode !== 0) {
      this.onMessage(buf, start, end, opcode);
      return;
    }
    // Fragmented messages are rare from these servers; join them the simple way.
    if (opcode !== 0) this.fragmentOp = opcode;
    this.fragments.push(Buffer.from(buf.subarray(start, end)));
    if (fin) {
      const whole = Buffer.concat(this.fragments);
      this.fragments = [];
      this.onMessage(whole, 0, whole.length, this.fragmentOp);
    }
  }
}

/** Header + payload bytes of the frame at `off`, or -1 when the header itself is incomplete. */
function frameLength(buf: Buffer, off: number, len: number): number {
  if (len - off < 2) return -1;
  const size = (buf[off + 1] as number) & 0x7f;
  if (size < 126) return 2 + size;
  if (size === 126) return len - off < 4 ? -1 : 4 + buf.readUInt16BE(off + 2);
  if (len - off < 10) return -1;
  return 10 + buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
}

/** A client frame: FIN set, masked with a fresh key as RFC 6455 requires of clients. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const size = payload.length;
  const head = size < 126 ? 2 : size < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + size);
  out[0] = 0x80 | opcode;
  if (size < 126) out[1] = 0x80 | size;
  else if (size < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(size, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(size / 2 ** 32), 2);
    out.writeUInt32BE(size >>> 0, 6);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < size; i++) out[head + 4 + i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return out;
}
