// Random identifiers and secrets drawn from one pooled buffer: no allocation per session on the create path.
import { randomFillSync } from "node:crypto";

const POOL_BYTES = 4096;

export class RandomIds {
  private pool = Buffer.allocUnsafe(POOL_BYTES);
  private offset = POOL_BYTES;

  /** `bytes` random bytes as base64url text (bytes * 4/3 characters). */
  next(bytes: number): string {
    if (this.offset + bytes > POOL_BYTES) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const text = this.pool.toString("base64url", this.offset, this.offset + bytes);
    // Bytes once handed out are never handed out again.
    this.offset += bytes;
    return text;
  }
}
