// The transport side of an attachment: a tiny write-only interface every transport implements.

export interface Sink {
  /** Writes one text frame. Returns false when the link is already closed. */
  write(frame: string): boolean;
  /** Writes several frames in one batch (one syscall where the transport can). */
  writeMany(frames: readonly string[]): boolean;
  /** Bytes written but not yet accepted by the kernel. */
  bufferedAmount(): number;
  /** Ends the link with a close code from protocol/codes.ts. */
  close(code: number, reason: string): void;
}
