// The SSE parser against the fixtures, every split point, every line-end style, and split UTF-8.
import { describe, expect, it } from "vitest";
import { type SseEvent, SseParser, parseSseStream } from "@agentwire/protocol/sse";
import { FIXTURE_NAMES, fixture, splitBytes, variants } from "../helpers/fake-upstream.js";

const enc = new TextEncoder();

function parseChunks(chunks: Uint8Array[]): SseEvent[] {
  const parser = new SseParser();
  const out: SseEvent[] = [];
  for (const c of chunks) out.push(...parser.push(c));
  out.push(...parser.end());
  return out;
}

function parseText(text: string): SseEvent[] {
  return parseChunks([enc.encode(text)]);
}

/** Events with data as parsed JSON, so a `data:` split over lines compares equal to one line. */
function asJson(events: SseEvent[]): unknown[] {
  return events.map((e) => ({ type: e.type, data: e.data === "[DONE]" ? e.data : JSON.parse(e.data) }));
}

const ev = (data: string, type = "message", id = "", retry?: number, ownId?: string): SseEvent => ({ type, data, id, retry, ...(ownId === undefined ? {} : { ownId }) });

describe("fixtures", () => {
  it("parse to the expected event counts and types", () => {
    const openai = parseText(fixture("openai-chat-text.sse"));
    expect(openai).toHaveLength(16);
    expect(openai.every((e) => e.type === "message")).toBe(true);
    expect(openai.at(-1)).toEqual(ev("[DONE]"));

    const anthropic = parseText(fixture("anthropic-messages-text.sse"));
    expect(anthropic.map((e) => e.type)).toEqual([
      "message_start",
      "content_block_start",
      "ping",
      ...Array(9).fill("content_block_delta"),
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    expect(anthropic[2]?.data).toBe('{"type": "ping"}');
  });

  for (const name of FIXTURE_NAMES) {
    it(`${name}: every split point, and every variant at every split point, gives identical events`, () => {
      const plain = parseText(fixture(name));
      expect(plain.length).toBeGreaterThan(3);
      for (const variant of ["plain", "crlf", "cr", "comments", "mixed"] as const) {
        const bytes = enc.encode(variants[variant](fixture(name)));
        const whole = parseChunks([bytes]);
        if (variant === "mixed") expect(asJson(whole)).toEqual(asJson(plain));
        else expect(whole).toEqual(plain);
        for (let i = 0; i <= bytes.length; i++) {
          const got = parseChunks([bytes.subarray(0, i), bytes.subarray(i)]);
          if (got.length !== whole.length || got.some((e, k) => e.data !== whole[k]?.data || e.type !== whole[k]?.type)) {
            expect({ variant, split: i, got }).toEqual({ variant, split: i, got: whole });
          }
        }
      }
    });

    it(`${name}: byte by byte and random multi-way splits give identical events`, () => {
      const bytes = enc.encode(variants.mixed(fixture(name)));
      const whole = parseChunks([bytes]);
      expect(parseChunks(splitBytes(bytes, "bytes"))).toEqual(whole);
      for (let seed = 1; seed <= 50; seed++) {
        expect(parseChunks(splitBytes(bytes, { random: seed, pieces: 2 + (seed % 40) }))).toEqual(whole);
      }
    });
  }

  it("multi-line data joins with \\n and still parses as the same JSON", () => {
    const text = fixture("openai-chat-tool-calls.sse");
    const joined = parseText(variants.multiline(text));
    expect(joined[0]?.data.startsWith("{\n")).toBe(true);
    expect(asJson(joined)).toEqual(asJson(parseText(text)));
  });
});

describe("line ends", () => {
  it("treats \\r\\n, \\n and \\r alike, mixed in one stream", () => {
    expect(parseText("data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n")).toEqual([ev("a"), ev("b"), ev("c"), ev("d")]);
  });

  it("does not see an empty line in a \\r\\n split across chunks", () => {
    const chunks = ["data: a\r", "\ndata: b\r", "\n\r", "\n"].map((s) => enc.encode(s));
    expect(parseChunks(chunks)).toEqual([ev("a\nb")]);
  });

  it("keeps the \\r\\n pairing when an empty chunk comes between \\r and \\n", () => {
    const chunks = ["data: a\r", "", "\n", "\r", "", "\n"].map((s) => enc.encode(s));
    expect(parseChunks(chunks)).toEqual([ev("a")]);
  });
});

describe("fields", () => {
  it("handles comments, event, id, retry, a field without colon and the single optional space", () => {
    const text = [
      ": comment",
      "event: update",
      "id: 7",
      "retry: 1500",
      "data:  two spaces keep one",
      "data:no space",
      "data",
      "",
      "retry: soon",
      "id",
      "data: x",
      "",
      "",
    ].join("\n");
    const comments: string[] = [];
    const parser = new SseParser({ onComment: (c) => comments.push(c) });
    const events = [...parser.push(enc.encode(text)), ...parser.end()];
    expect(events).toEqual([ev(" two spaces keep one\nno space\n", "update", "7", 1500, "7"), ev("x", "message", "", 1500, "")]);
    expect(comments).toEqual([" comment"]);
    expect([parser.lastEventId, parser.retry]).toEqual(["", 1500]);
  });

  it("does not dispatch an event without data, and resets the event type after each block", () => {
    // The id of a block without data still becomes the stream's last id, but not the next event's own id.
    expect(parseText("event: ping\n\nid: 3\n\ndata: y\n\n")).toEqual([ev("y", "message", "3")]);
  });

  it("dispatches a lone `data:` line as an event with empty data (spec), and ignores unknown fields", () => {
    expect(parseText("data:\nfoo: bar\n\n")).toEqual([ev("")]);
  });

  it("with onEvent, hands events and comments over in stream order", () => {
    const order: string[] = [];
    const parser = new SseParser({ onComment: (c) => order.push(`comment:${c}`), onEvent: (e) => order.push(`event:${e.data}`) });
    expect(parser.push(enc.encode("data: a\n\n: mid\ndata: b\n\n: close 4000 slow_consumer\n\n"))).toEqual([]);
    expect(order).toEqual(["event:a", "comment: mid", "event:b", "comment: close 4000 slow_consumer"]);
  });

  it("ignores an id containing NUL, and keeps the last id across events", () => {
    expect(parseText("id: 1\ndata: a\n\nid: 2\u0000\ndata: b\n\n")).toEqual([ev("a", "message", "1", undefined, "1"), ev("b", "message", "1")]);
  });

  it("discards an event not terminated by a blank line at end of stream", () => {
    expect(parseText("data: a\n\ndata: cut")).toEqual([ev("a")]);
    expect(parseText("data: a\n\ndata: cut\n")).toEqual([ev("a")]);
  });

  it("strips a leading BOM, even split across chunks", () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode("data: a\n\n")]);
    for (let i = 0; i <= 3; i++) expect(parseChunks([bytes.subarray(0, i), bytes.subarray(i)])).toEqual([ev("a")]);
  });
});

describe("UTF-8", () => {
  const text = "event: é\ndata: héllo 日本語 🎉 ok\ndata: ∑\r\n\r\n";
  const expected = [ev("héllo 日本語 🎉 ok\n∑", "é")];

  it("decodes characters split at every byte boundary", () => {
    const bytes = enc.encode(text);
    expect(bytes.length).toBeGreaterThan(text.length); // multi-byte characters present
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j += 3) {
        expect(parseChunks([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)])).toEqual(expected);
      }
    }
    expect(parseChunks(splitBytes(bytes, "bytes"))).toEqual(expected);
  });

  it("turns an invalid byte into U+FFFD, and a truncated character at end of stream dispatches nothing", () => {
    const parser = new SseParser();
    expect(parser.push(new Uint8Array([...enc.encode("data: a\n\ndata: "), 0xe6]))).toEqual([ev("a")]);
    expect(parser.push(enc.encode("!\n\ndata: "))).toEqual([ev("\ufffd!")]);
    expect(parser.push(new Uint8Array([0xe6]))).toEqual([]);
    expect(parser.end()).toEqual([]);
  });
});

describe("parseSseStream", () => {
  it("reads a ReadableStream and an async iterable alike", async () => {
    const bytes = enc.encode(variants.crlf(fixture("anthropic-messages-tool-use.sse")));
    const chunks = splitBytes(bytes, { random: 7, pieces: 30 });
    const fromStream: SseEvent[] = [];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(c);
        controller.close();
      },
    });
    for await (const e of parseSseStream(stream)) fromStream.push(e);
    const fromIterable: SseEvent[] = [];
    async function* gen(): AsyncGenerator<Uint8Array> {
      yield* chunks;
    }
    for await (const e of parseSseStream(gen())) fromIterable.push(e);
    expect(fromStream).toEqual(parseChunks([bytes]));
    expect(fromIterable).toEqual(fromStream);
  });

  it("cancels the source when the consumer stops early", async () => {
    let cancelled: unknown = "not cancelled";
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(enc.encode("data: tick\n\n"));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    let n = 0;
    for await (const e of parseSseStream(stream)) {
      expect(e.data).toBe("tick");
      if (++n === 3) break;
    }
    expect(cancelled).toBeUndefined();
  });
});
