// Properties over raw HTTP: malformed messages on POST /messages, random requests under /v1/sessions, and mangled request bytes never crash the node or get a malformed answer.
import { type Socket, connect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SseClient } from "../helpers/sse-client.js";
import { MB, type ServerProc, type Session, expectCompletedTurn, startServerProc } from "../helpers/server-proc.js";
import { InFlight, type Malformed, assertOptions, describeMalformed, fuzzSettings, isErrorCode, malformedMessage, validMessage } from "./arbitraries.js";

const limits = { maxPayloadBytes: 128 * 1024, maxInputChars: 32 * 1024 };
const RSS_HEADROOM_MB = 64;
/** A request with a valid head must be answered; this only turns a hang into a failure. */
const ANSWER_TIMEOUT_MS = 5_000;

// ---- a raw HTTP/1.1 client: the test reads exactly the bytes the server wrote ----

interface Response {
  kind: "response";
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  /** 101 or an event stream: the head is all there is to judge. */
  streaming: boolean;
  /** 1xx answers that came first (100 Continue). */
  interim: number[];
}
type Answer = Response | { kind: "closed"; bytes: Buffer } | { kind: "garbled"; why: string; bytes: Buffer };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The first complete response in `buf`, null while it is incomplete (`final`: the server closed). */
function parseResponse(buf: Buffer, head: boolean, final: boolean): Answer | null {
  const interim: number[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf("\r\n\r\n", at);
    if (end < 0) return final ? (buf.length === 0 ? { kind: "closed", bytes: buf } : { kind: "garbled", why: "the head never ended", bytes: buf }) : null;
    const [statusLine = "", ...lines] = buf.subarray(at, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(statusLine);
    if (!m) return { kind: "garbled", why: `not a status line: ${JSON.stringify(statusLine.slice(0, 80))}`, bytes: buf };
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      if (colon <= 0 || !TOKEN.test(name)) return { kind: "garbled", why: `not a header line: ${JSON.stringify(line.slice(0, 80))}`, bytes: buf };
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const rest = buf.subarray(end + 4);
    if (status >= 100 && status < 200 && status !== 101) {
      interim.push(status);
      at = end + 4;
      continue;
    }
    const response = { kind: "response" as const, status, headers, interim, streaming: false, body: Buffer.alloc(0) };
    if (status === 101 || (headers.get("content-type") ?? "").startsWith("text/event-stream")) return { ...response, streaming: true, body: rest };
    // A HEAD answer has no body, whatever its Content-Length says; nothing here reads past its head.
    if (head || status === 204 || status === 304) return response;
    if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
      const chunks: Buffer[] = [];
      let p = 0;
      for (;;) {
        const eol = rest.indexOf("\r\n", p);
        if (eol < 0) return final ? { kind: "garbled", why: "a chunked body was cut", bytes: buf } : null;
        const size = Number.parseInt(rest.subarray(p, eol).toString("latin1"), 16);
        if (!Number.isFinite(size)) return { kind: "garbled", why: "a bad chunk size", bytes: buf };
        if (rest.length < eol + 2 + size + 2) return final ? { kind: "garbled", why: "a chunked body was cut", bytes: buf } : null;
        if (size === 0) return { ...response, body: Buffer.concat(chunks) };
        chunks.push(rest.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
      }
    }
    const length = headers.get("content-length");
    if (length === undefined) return final ? { ...response, body: rest } : null;
    if (!/^\d+$/.test(length)) return { kind: "garbled", why: `Content-Length ${JSON.stringify(length)}`, bytes: buf };
    if (rest.length >= Number(length)) return { ...response, body: rest.subarray(0, Number(length)) };
    return final ? { kind: "garbled", why: "the body was cut", bytes: buf } : null;
  }
}

/**
 * Sends `request` on a fresh connection and resolves with the first answer (read by its framing),
 * or with how the link ended. Requests leave the connection alive: uWS then reads past a body it
 * refused unread, where `Connection: close` would close on it and reset the link under a client
 * still sending (EPIPE before the answer is read).
 */
function exchange(port: number, request: Buffer, { head = false, endAfterWrite = false } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (answer: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => {
      done = true;
      socket.destroy();
      reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms; got ${JSON.stringify(buf.toString("latin1").slice(0, 200))}`));
    }, ANSWER_TIMEOUT_MS);
    // The server may answer and close before the whole request is written: what it wrote is judged.
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const answer = parseResponse(buf, head, false);
      if (answer) finish(answer);
    });
    socket.on("close", () => finish(parseResponse(buf, head, true) as Answer));
    socket.write(request);
    if (endAfterWrite) socket.end();
  });
}

interface RequestParts {
  method: string;
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** Sends the body chunked, cut at these offsets; else with a Content-Length. */
  chunks?: number[];
}

function encode({ method, target, headers, body, chunks }: RequestParts): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", ...headers.map(([k, v]) => `${k}: ${v}`)];
  if (body === undefined) return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  if (!chunks) return Buffer.concat([Buffer.from(`${[...lines, `Content-Length: ${body.length}`].join("\r\n")}\r\n\r\n`, "latin1"), body]);
  const cuts = [...new Set(chunks.map((c) => c % (body.length + 1)))].sort((a, b) => a - b).filter((c) => c > 0 && c < body.length);
  const pieces = [0, ...cuts, body.length].slice(1).map((to, i, all) => body.subarray(i === 0 ? 0 : (all[i - 1] as number), to));
  const framed = pieces.filter((p) => p.length > 0).flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from("\r\n")]);
  return Buffer.concat([Buffer.from(`${[...lines, "Transfer-Encoding: chunked"].join("\r\n")}\r\n\r\n`, "latin1"), ...framed, Buffer.from("0\r\n\r\n")]);
}

/** The failures a well-formed answer cannot have: a garbled head, no answer, an error that is not JSON with a known code, a handler that threw. */
function expectWellFormed(answer: Answer, request: string, { upgrade = false, head = false } = {}): asserts answer is Response {
  if (answer.kind !== "response") throw new Error(`${request}: ${answer.kind === "closed" ? "the link closed without an answer" : `a garbled answer (${answer.why}): ${JSON.stringify(answer.bytes.toString("latin1").slice(0, 200))}`}`);
  expect(answer.status === 101 ? upgrade : true, `${request}: 101 without an upgrade`).toBe(true);
  // 500 means a handler failed: hostile input must meet a refusal, never a bug.
  expect(answer.status, `${request}: a handler failed`).not.toBe(500);
  if (answer.streaming || answer.status === 204 || answer.status === 101) return;
  const type = answer.headers.get("content-type") ?? "";
  if (answer.status >= 400) {
    expect(type, `${request}: the error's content type`).toMatch(/^application\/json\b/);
    if (head) return;
    const body = JSON.parse(answer.body.toString("utf8")) as { error?: { code?: unknown; message?: unknown } };
    expect(isErrorCode(body.error?.code), `${request}: answered ${answer.status} ${answer.body.toString("utf8").slice(0, 200)}`).toBe(true);
    expect(typeof body.error?.message, request).toBe("string");
  } else if (!head && /^application\/json\b/.test(type)) {
    expect(() => JSON.parse(answer.body.toString("utf8")), `${request}: a JSON answer that does not parse`).not.toThrow();
  }
}

const describeRequest = (bytes: Buffer) => JSON.stringify(bytes.subarray(0, 240).toString("latin1")) + (bytes.length > 240 ? `... (${bytes.length} bytes)` : "");

// ---- arbitraries for requests ----

const latin1Text = (maxLength: number) =>
  fc.string({ unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09)).map((c) => String.fromCharCode(c)), maxLength });
/**
 * Letters, digits and `-` only: uWS holds a request whose header name has any other token character
 * (`X_Id`, `a.b`) unanswered until its idle timeout, and the same for control characters in a value.
 * The mangled-bytes property below sends those; here every request is one uWS can parse.
 */
const headerName = fc.string({ unit: fc.constantFrom(..."-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), minLength: 1, maxLength: 16 });
/** The test owns framing and the connection: random headers never take those names. */
const OWNED = new Set(["host", "content-length", "transfer-encoding", "connection", "upgrade", "expect", "te", "trailer"]);
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.webSegment() },
  { weight: 1, arbitrary: fc.constantFrom("%00", "%2F", "..", ".", "%ZZ", "%", "%E0%A4%A", "s_nope", "~", "%F0%9F%98%80", "t1", "t999", ";x", "a%20b") },
  { weight: 1, arbitrary: fc.integer({ min: 65, max: 1500 }).map((n) => "s".repeat(n)) },
);
const queryValue = fc.oneof(fc.webSegment(), fc.constantFrom("", "-1", "1.5", "abc", "%FF", "%", "0", "9007199254740993", "1e3"));

type SessionPick = { live: number } | { raw: string } | null;
type Auth = "none" | "right" | "other" | "wrong" | "garbage";
interface RandomRequest {
  method: string;
  session: SessionPick;
  tail: string;
  query: [string, string][];
  auth: Auth;
  authInQuery: boolean;
  contentType: string | undefined;
  headers: [string, string][];
  upgrade: boolean;
  expectContinue: boolean;
  body: Buffer | undefined;
  chunks: number[] | undefined;
}

const randomRequest: fc.Arbitrary<RandomRequest> = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT"),
  session: fc.oneof(
    { weight: 4, arbitrary: fc.nat({ max: 2 }).map((live): SessionPick => ({ live })) },
    { weight: 2, arbitrary: segment.map((raw): SessionPick => ({ raw })) },
    { weight: 1, arbitrary: fc.constant(null) },
  ),
  tail: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("", "/messages", "/events", "/ws", "/turns/t1", "/turns/t2") },
    { weight: 2, arbitrary: fc.constantFrom("/", "//messages", "/messages/", "/events/x", "/turns/", "X") },
    { weight: 2, arbitrary: segment.map((s) => `/turns/${s}`) },
    { weight: 1, arbitrary: segment.map((s) => `/${s}`) },
  ),
  query: fc.array(fc.tuple(fc.oneof(fc.constantFrom("token", "afterSeq", "lastEventId", "x"), fc.webSegment()), queryValue), { maxLength: 3 }),
  auth: fc.constantFrom<Auth>("none", "right", "right", "other", "wrong", "garbage"),
  authInQuery: fc.boolean(),
  contentType: fc.option(
    fc.oneof(
      fc.constantFrom("application/json", "application/json; charset=utf-8", "application/vnd.agentwire+json", "APPLICATION/JSON", "text/plain", "multipart/form-data; boundary=x", "application/jsonx", "application/json ; x=y", "", "*/*"),
      latin1Text(30),
    ),
    { nil: undefined },
  ),
  headers: fc.array(fc.tuple(headerName.filter((n) => !OWNED.has(n.toLowerCase())), latin1Text(40)), { maxLength: 5 }),
  upgrade: fc.boolean(),
  expectContinue: fc.boolean(),
  body: fc.option(
    fc.oneof(
      malformedMessage(limits, "http").map((m) => Buffer.from(m.text)),
      validMessage.map((v) => Buffer.from(JSON.stringify(v))),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.integer({ min: limits.maxPayloadBytes + 1, max: limits.maxPayloadBytes + 4096 }).map((n) => Buffer.alloc(n, 0x20)),
    ),
    { nil: undefined },
  ),
  chunks: fc.option(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), { nil: undefined }),
});

describe("hostile HTTP requests", () => {
  let proc: ServerProc;
  let baseline = 0;
  beforeAll(async () => {
    proc = await startServerProc("fuzz-http", { AGENTWIRE_MAX_PAYLOAD_BYTES: limits.maxPayloadBytes, AGENTWIRE_MAX_INPUT_CHARS: limits.maxInputChars });
    // A turn first, so the baseline includes a warmed-up engine and agent.
    const warm = await proc.createSession();
    await completeTurnOverHttp(warm, 0);
    baseline = proc.rssBytes();
  });
  afterAll(() => proc?.stop());

  /** POSTs an input, watches the turn on the event stream, and checks it whole. */
  async function completeTurnOverHttp(s: Session, afterSeq: number): Promise<void> {
    const stream = await SseClient.open(SseClient.url(proc.node.base, s, `afterSeq=${afterSeq}`));
    const res = await fetch(`${proc.node.base}/v1/sessions/${s.sessionId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "input", id: "after-fuzz", text: "2 * 21" }),
    });
    expect(res.status).toBe(202);
    const { turn } = (await res.json()) as { turn: string };
    await stream.waitForTurnEnd(turn);
    expectCompletedTurn(stream.messages, turn, afterSeq);
    stream.close();
  }

  const messages = fuzzSettings(60, 2_000);
  it(
    "POST /messages: each malformed message is refused with its status, code and field; nothing is taken",
    async () => {
      const s = await proc.createSession();
      const runs = new InFlight();
      const property = fc.asyncProperty(
        fc.array(
          fc.record({
            message: malformedMessage(limits, "http"),
            contentType: fc.constantFrom("application/json", "application/json; charset=utf-8", "application/vnd.agentwire+json"),
            chunks: fc.option(fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        runs.track(async (batch) => {
          for (const { message, contentType, chunks } of batch) {
            proc.expectAlive("before this message");
            const request = encode({
              method: "POST",
              target: `/v1/sessions/${s.sessionId}/messages`,
              headers: [["Authorization", `Bearer ${s.token}`], ["Content-Type", contentType]],
              body: Buffer.from(message.text, "utf8"),
              chunks,
            });
            const label = describeMalformed(message);
            const answer = await exchange(proc.node.port, request);
            proc.expectAlive(`after ${label}`);
            expectWellFormed(answer, label);
            const { error } = JSON.parse(answer.body.toString("utf8")) as { error: { code: string; field?: string; id?: string; retryable: unknown } };
            expect({ status: answer.status, code: error.code, field: fieldSeen(error.field, message) }, label).toEqual({ status: message.expect.status, code: message.expect.code, field: fieldWanted(message) });
            expect(typeof error.retryable, label).toBe("boolean");
            // HTTP pairs the answer with its request; an id, when given back, must be the message's own.
            if (error.id !== undefined) expect(error.id, label).toBe(message.expect.id);
          }
        }),
      );
      await fc.assert(property, assertOptions(messages));
      await runs.idle();
      proc.expectAlive("after the run");
      const snapshot = await fetch(`${proc.node.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
      expect(snapshot.status).toBe(200);
      expect(await snapshot.json()).toMatchObject({ lastSeq: 0, pendingInput: "", config: { tools: [] }, turns: [] });
      await completeTurnOverHttp(s, 0);
    },
    messages.testTimeoutMs,
  );

  const requests = fuzzSettings(150, 200);
  it(
    "random methods, paths, headers, content types and bodies under /v1/sessions: always a well-formed answer, errors as JSON with a known code",
    async () => {
      const live = await Promise.all([0, 1, 2].map(() => proc.createSession()));
      const runs = new InFlight();
      const property = fc.asyncProperty(
        randomRequest,
        runs.track(async (r) => {
          proc.expectAlive("before this request");
          const picked = r.session && "live" in r.session ? live[r.session.live] : undefined;
          const sessionPath = r.session === null ? "" : `/${picked ? picked.sessionId : (r.session as { raw: string }).raw}`;
          const token = { none: undefined, right: picked?.token ?? live[0]?.token, other: live[((r.session as { live?: number } | null)?.live ?? 0) + 1]?.token ?? live[0]?.token, wrong: "wrong", garbage: "\u00ff%x y" }[r.auth];
          const query = [...r.query.map(([k, v]) => `${encodeURIComponent(k)}=${v}`), ...(token !== undefined && r.authInQuery ? [`token=${encodeURIComponent(token)}`] : [])];
          const target = `/v1/sessions${sessionPath}${r.tail}${query.length > 0 ? `?${query.join("&")}` : ""}`;
          const headers: [string, string][] = [...r.headers];
          if (token !== undefined && !r.authInQuery) headers.push(["Authorization", `Bearer ${token}`]);
          if (r.contentType !== undefined) headers.push(["Content-Type", r.contentType]);
          if (r.expectContinue && r.body) headers.push(["Expect", "100-continue"]);
          if (r.upgrade) headers.push(["Connection", "Upgrade"], ["Upgrade", "websocket"], ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "13"]);
          const bytes = encode({ method: r.method, target, headers, body: r.body, chunks: r.chunks });
          const label = `${r.method} ${describeRequest(bytes)}`;
          const answer = await exchange(proc.node.port, bytes, { head: r.method === "HEAD" });
          proc.expectAlive(`after ${label}`);
          expectWellFormed(answer, label, { upgrade: r.upgrade, head: r.method === "HEAD" });
        }),
      );
      await fc.assert(property, assertOptions(requests));
      await runs.idle();
      proc.expectAlive("after the run");
      await completeTurnOverHttp(await proc.createSession(), 0);
    },
    requests.testTimeoutMs,
  );

  const mangled = fuzzSettings(150, 200);
  it(
    `mangled request bytes: the node stays up, answers well-formed or closes the link; afterwards a fresh session completes a turn and RSS stays within baseline + ${RSS_HEADROOM_MB} MB`,
    async () => {
      const s = await proc.createSession();
      const valid = [
        `GET /v1/sessions/${s.sessionId} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\n\r\n`,
        `POST /v1/sessions/${s.sessionId}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"type":"ping"}`,
        `POST /v1/sessions/${s.sessionId}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"typ\r\na\r\ne":"ping"}\r\n0\r\n\r\n`,
        `GET /v1/sessions/${s.sessionId}/turns/t1?token=${s.token} HTTP/1.1\r\nHost: x\r\n\r\n`,
        `DELETE /v1/sessions/s_nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n`,
        `GET /v1/sessions/${s.sessionId}/ws?token=${s.token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ].map((t) => Buffer.from(t, "latin1"));
      type Edit = (b: Buffer) => Buffer;
      const edit: fc.Arbitrary<Edit> = fc.oneof(
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, byte]): Edit => (b) => {
          const out = Buffer.from(b);
          if (out.length > 0) out[at % out.length] = byte;
          return out;
        }),
        fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, bytes]): Edit => (b) => Buffer.concat([b.subarray(0, at % (b.length + 1)), bytes, b.subarray(at % (b.length + 1))])),
        fc.tuple(fc.nat(), fc.integer({ min: 1, max: 40 })).map(([at, n]): Edit => (b) => Buffer.concat([b.subarray(0, at % (b.length + 1)), b.subarray((at % (b.length + 1)) + n)])),
        fc.nat().map((at): Edit => (b) => b.subarray(0, at % (b.length + 1))),
        fc.constant<Edit>((b) => Buffer.from(b.toString("latin1").replaceAll("\r\n", "\n"), "latin1")),
        fc.tuple(fc.nat(), fc.integer({ min: 1, max: 300 })).map(([at, n]): Edit => (b) => {
          // One header line repeated, as a proxy with a bug (or a smuggler) sends it.
          const lines = b.toString("latin1").split("\r\n");
          const i = 1 + (at % Math.max(1, lines.indexOf("") - 1));
          return Buffer.from([...lines.slice(0, i), ...Array(n % 64).fill(lines[i] ?? ""), ...lines.slice(i)].join("\r\n"), "latin1");
        }),
      );
      const input = fc.oneof(
        { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...valid), fc.array(edit, { minLength: 1, maxLength: 3 })).map(([b, edits]) => edits.reduce<Buffer>((acc, e) => e(acc), b)) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
        { weight: 1, arbitrary: fc.integer({ min: 4000, max: 20_000 }).map((n) => Buffer.from(`GET /v1/sessions/${s.sessionId}?${"q".repeat(n)} HTTP/1.1\r\nHost: x\r\n\r\n`, "latin1")) },
      );
      const runs = new InFlight();
      const property = fc.asyncProperty(
        input,
        runs.track(async (bytes) => {
          proc.expectAlive("before these bytes");
          // The client ends its side: whatever the server makes of the bytes, the link must end.
          const answer = await exchange(proc.node.port, bytes, { endAfterWrite: true, head: bytes.subarray(0, 5).toString("latin1") === "HEAD " });
          proc.expectAlive(`after ${describeRequest(bytes)}`);
          if (answer.kind === "garbled") throw new Error(`a garbled answer (${answer.why}) to ${describeRequest(bytes)}: ${JSON.stringify(answer.bytes.toString("latin1").slice(0, 200))}`);
          if (answer.kind === "response") expect(answer.status, `a handler failed on ${describeRequest(bytes)}`).not.toBe(500);
        }),
      );
      await fc.assert(property, assertOptions(mangled));
      await runs.idle();
      proc.expectAlive("after the run");
      await completeTurnOverHttp(await proc.createSession(), 0);
      const grownMb = (proc.rssBytes() - baseline) / MB;
      expect(grownMb, `RSS grew ${grownMb.toFixed(1)} MB`).toBeLessThan(RSS_HEADROOM_MB);
    },
    mangled.testTimeoutMs,
  );
});

function fieldSeen(field: string | undefined, m: Malformed): string | undefined {
  const { under } = m.expect;
  return under !== undefined && (field === under || field?.startsWith(`${under}.`)) ? `${under} (or below)` : field;
}

function fieldWanted(m: Malformed): string | undefined {
  return m.expect.field ?? (m.expect.under !== undefined ? `${m.expect.under} (or below)` : undefined);
}
