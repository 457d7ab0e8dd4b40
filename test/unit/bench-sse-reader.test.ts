// The bench's byte-level event reader reads agentwire's streams exactly as the shared SSE parser does, however split.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SseParser } from "@agentwire/protocol/sse";
import { EventStreamParser } from "../../bench/raw-sse-client.js";

/** One agentwire-shaped stream: logged events with ids, ephemeral ones without, keep-alive comments, either line end. */
const stream = fc
  .record({
    crlf: fc.boolean(),
    blocks: fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant("logged" as const), text: fc.string({ unit: "grapheme", maxLength: 12 }) }),
        fc.record({ kind: fc.constant("ephemeral" as const), text: fc.string({ maxLength: 6 }) }),
        fc.record({ kind: fc.constant("comment" as const), text: fc.string({ maxLength: 6 }).filter((t) => !/[\r\n]/.test(t)) }),
      ),
      { maxLength: 12 },
    ),
  })
  .map(({ crlf, blocks }) => {
    const nl = crlf ? "\r\n" : "\n";
    let seq = 0;
    return blocks
      .map((b) => {
        if (b.kind === "comment") return `:${b.text}${nl}`;
        if (b.kind === "ephemeral") return `event: pong${nl}data: ${JSON.stringify({ type: "pong", id: b.text })}${nl}${nl}`;
        seq++;
        return `id: ${seq}${nl}event: token${nl}data: ${JSON.stringify({ type: "token", seq, turn: "t1", text: b.text })}${nl}${nl}`;
      })
      .join("");
  });

function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    parts.push(bytes.subarray(from, p));
    from = p;
  }
  return parts;
}

describe("the bench's SSE reader", () => {
  it("gives the same data and ids as the shared parser", () => {
    fc.assert(
      fc.property(stream, fc.array(fc.nat(), { maxLength: 8 }), (text, cuts) => {
        const bytes = Buffer.from(text, "utf8");
        const shared = new SseParser();
        const expected = splitAt(bytes, cuts).flatMap((part) => shared.push(part)).map((e) => [e.data, e.ownId === undefined ? -1 : Number(e.ownId)]);
        const seen: [string, number][] = [];
        const reader = new EventStreamParser((buf, start, end, id) => seen.push([buf.toString("utf8", start, end), id]));
        for (const part of splitAt(bytes, cuts)) reader.push(part, 0, part.length);
        expect(seen).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});
