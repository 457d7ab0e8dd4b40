// The HTTP and WebSocket edges byte by byte over raw TCP: framing, header limits, handshakes, frame errors, fd exhaustion.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { NODE_FLAGS } from "../../src/node-flags.js";
import { eventually } from "../helpers/node-proc.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

type Reply = { status: string; headers: Record<string, string>; body: string };

/** Every complete HTTP response in `data`, in order. */
function replies(data: Buffer): Reply[] {
  const out: Reply[] = [];
  for (let at = 0; ; ) {
    const end = data.indexOf("\r\n\r\n", at);
    if (end < 0) return out;
    const [status = "", ...lines] = data.subarray(at, end).toString("latin1").split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) headers[line.slice(0, line.indexOf(":")).toLowerCase()] = line.slice(line.indexOf(":") + 1).trim();
    const length = status.startsWith("HTTP/1.1 101") ? 0 : Number(headers["content-length"] ?? 0);
    if (data.length < end + 4 + length) return out;
    out.push({ status, headers, body: data.subarray(end + 4, end + 4 + length).toString("utf8") });
    at = end + 4 + length;
  }
}

/** One TCP link; collects what the server writes and settles `closed` when the server closes it. */
class Link {
  data = Buffer.alloc(0);
  readonly opened = performance.now();
  readonly closed: Promise<number>;
  private readonly waiters = new Set<() => void>();
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk) => {
      this.data = Buffer.concat([this.data, chunk]);
      for (const wake of this.waiters) wake();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.on("close", () => {
        resolve(performance.now() - this.opened);
        for (const wake of this.waiters) wake();
      }),
    );
  }
  static open(port: number): Promise<Link> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(new Link(socket)));
      socket.once("error", reject);
    });
  }
  /** Resolves with `check`'s answer once it has one; rejects if the link closes first. */
  until<T>(what: string, check: (data: Buffer) => T | undefined): Promise<T> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        const found = check(this.data);
        if (found === undefined && !this.socket.destroyed) return;
        this.waiters.delete(wake);
        if (found !== undefined) resolve(found);
        else reject(new Error(`closed before ${what}`));
      };
      this.waiters.add(wake);
      wake();
    });
  }
  reply(n = 1): Promise<Reply> {
    return this.until(`reply ${n}`, (data) => replies(data)[n - 1]);
  }
  write(bytes: string | Buffer): this {
    this.socket.write(bytes);
    return this;
  }
}

/** Writes one request on a fresh link and returns the link once the server has closed it. */
async function sendAndClose(port: number, bytes: string): Promise<Link> {
  const link = (await Link.open(port)).write(bytes);
  await link.closed;
  return link;
}

const errorOf = (reply: Reply) => (JSON.parse(reply.body) as { error: { code: string; field?: string } }).error;
const CREATE = "POST /v1/sessions HTTP/1.1\r\nHost: x\r\n\r\n";

describe("HTTP framing and header limits", () => {
  let server: TestServer;
  beforeAll(async () => void (server = await startTestServer()));
  afterAll(() => server.close());
  const stillServing = async () => expect((await fetch(`${server.base}/v1/sessions`, { method: "POST" })).status).toBe(201);

  it("answers differing Content-Length headers with 400 and closes before the request smuggled behind them", async () => {
    const before = server.engine.sessionCount;
    const link = await sendAndClose(server.port, `POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${CREATE.length}\r\n\r\n${CREATE}`);
    const answers = replies(link.data);
    expect(answers.map((r) => r.status)).toEqual(["HTTP/1.1 400 Bad Request"]);
    expect(answers[0]?.headers.connection).toBe("close");
    expect(errorOf(answers[0] as Reply)).toMatchObject({ code: ErrorCode.InvalidMessage, field: "content-length" });
    expect(server.engine.sessionCount).toBe(before);
    await stillServing();
  });

  it("answers HEAD without a body, so the request pipelined behind it is read as its own", async () => {
    const link = await sendAndClose(server.port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /v1/sessions/x HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    // A HEAD answer may name the length GET would have; its body is never sent. So: three heads, one body.
    const text = link.data.toString("latin1");
    expect(text.match(/^HTTP\/1\.1 [^\r]*/gm)).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 200 OK"]);
    const bodies = text.split(/\r\n\r\n/).slice(1).filter((part) => !part.startsWith("HTTP/1.1 ") && part !== "");
    expect(bodies).toEqual(['{"ok":true}']);
  });

  it("refuses Content-Length with Transfer-Encoding: uWS cuts the link when both have values, 400 for the rest", async () => {
    const both = await sendAndClose(server.port, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    expect(both.data.length).toBe(0);
    for (const head of ["Content-Length:\r\nTransfer-Encoding: chunked", "Transfer-Encoding: gzip"]) {
      const link = await sendAndClose(server.port, `POST /v1/sessions HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n0\r\n\r\n${CREATE}`);
      const answers = replies(link.data);
      expect(answers.map((r) => r.status), head).toEqual(["HTTP/1.1 400 Bad Request"]);
      expect(errorOf(answers[0] as Reply), head).toMatchObject({ code: ErrorCode.InvalidMessage, field: "transfer-encoding" });
    }
    await stillServing();
  });

  it("answers a head above 4 KiB in one read with 431 at once; uWS cuts one that grows past 4 KiB over reads", async () => {
    const big = await sendAndClose(server.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(5000)}\r\n\r\n`);
    const [answer] = replies(big.data);
    expect(answer?.status).toBe("HTTP/1.1 431 Request Header Fields Too Large");
    expect(answer?.headers.connection).toBe("close");
    expect(errorOf(answer as Reply)).toMatchObject({ code: ErrorCode.InvalidMessage, field: "headers" });

    const split = (await Link.open(server.port)).write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ${"a".repeat(3000)}\r\n`);
    // An answer on another link means the server has read the first part on its own.
    await stillServing();
    split.write(`X-B: ${"b".repeat(2000)}\r\n\r\n`);
    await split.closed;
    expect(split.data.length).toBe(0);
    await stillServing();
  });

  const headers = (n: number) => Array.from({ length: n - 1 }, (_, i) => `X-H${i}: v\r\n`).join("");

  it("takes 48 headers; with a 49th uWS never answers, and cuts the link once the head passes 4 KiB", async () => {
    const ok = (await Link.open(server.port)).write(`POST /v1/sessions HTTP/1.1\r\nHost: x\r\n${headers(48)}\r\n`);
    expect((await ok.reply()).status).toBe("HTTP/1.1 201 Created");
    ok.socket.destroy();
    const cut = await sendAndClose(server.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${"p".repeat(4096)}\r\n${headers(49)}\r\n`);
    expect(cut.data.length).toBe(0);
    await stillServing();
  });

  it("leaves a short head with 49 headers unanswered until uWS's 10 s request timeout closes it", { timeout: 20_000 }, async () => {
    const link = await sendAndClose(server.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${headers(49)}\r\n`);
    expect(link.data.length).toBe(0);
    expect(await link.closed).toBeGreaterThan(7_500);
    await stillServing();
  });
});

const handshake = (path: string, version = "13", extra = "Upgrade: websocket\r\nConnection: Upgrade\r\n") =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: ${version}\r\n\r\n`;

/** The server's frames (never masked) after the 101 head: opcode and payload. */
function frames(data: Buffer): { opcode: number; payload: Buffer }[] {
  const out: { opcode: number; payload: Buffer }[] = [];
  const head = data.indexOf("\r\n\r\n");
  if (head < 0) return out;
  let at = head + 4;
  while (at + 2 <= data.length) {
    const short = (data[at + 1] as number) & 127;
    const [length, start] = short === 126 ? [data.readUInt16BE(at + 2), at + 4] : short === 127 ? [Number(data.readBigUInt64BE(at + 2)), at + 10] : [short, at + 2];
    if (start + length > data.length) break;
    out.push({ opcode: (data[at] as number) & 15, payload: data.subarray(start, start + length) });
    at = start + length;
  }
  return out;
}

/** A masked client frame of up to 125 bytes; `first` is the FIN/RSV/opcode byte. */
function frame(first: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  return Buffer.concat([Buffer.from([first, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ (mask[i % 4] as number))]);
}

describe("WebSocket handshakes and frames", () => {
  let server: TestServer;
  let path: string;
  beforeAll(async () => {
    server = await startTestServer();
    const s = await server.createSession();
    path = `/v1/sessions/${s.sessionId}/ws?token=${s.token}`;
  });
  afterAll(() => server.close());

  it("upgrades Sec-WebSocket-Version 13 only; others get 426 naming 13", async () => {
    const old = (await Link.open(server.port)).write(handshake(path, "8"));
    const refused = await old.reply();
    expect(refused.status).toBe("HTTP/1.1 426 Upgrade Required");
    expect(refused.headers["sec-websocket-version"]).toBe("13");
    expect(errorOf(refused)).toMatchObject({ code: ErrorCode.InvalidMessage, field: "sec-websocket-version" });
    const current = (await Link.open(server.port)).write(handshake(path));
    expect((await current.reply()).status).toBe("HTTP/1.1 101 Switching Protocols");
    old.socket.destroy();
    current.socket.destroy();
  });

  it("answers a GET on the WebSocket route that is no handshake with 426 and Upgrade: websocket, and keeps the link", async () => {
    for (const head of [`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, handshake(path, "13", "")]) {
      const link = (await Link.open(server.port)).write(head);
      const answer = await link.reply();
      expect(answer.status).toBe("HTTP/1.1 426 Upgrade Required");
      expect(answer.headers.upgrade).toBe("websocket");
      expect(errorOf(answer)).toMatchObject({ code: ErrorCode.InvalidMessage, field: "upgrade" });
      expect((await link.write(CREATE).reply(2)).status).toBe("HTTP/1.1 201 Created");
      link.socket.destroy();
    }
  });

  /** An attached link: the 101 and the `session` welcome have arrived. */
  const attached = async () => {
    const link = (await Link.open(server.port)).write(handshake(path));
    await link.until("the welcome", (data) => frames(data)[0]);
    return link;
  };

  const violations: [string, Buffer][] = [
    ["invalid UTF-8 in a text frame", frame(0x81, Buffer.from([0xc3, 0x28]))],
    ["RSV1 without a negotiated extension", frame(0xc1, Buffer.from("{}"))],
    ["RSV2", frame(0xa1, Buffer.from("{}"))],
    ["reserved data opcode 3", frame(0x83, Buffer.from("{}"))],
    ["reserved control opcode 0xB", frame(0x8b, Buffer.from("{}"))],
    ["a fragmented ping", frame(0x09, Buffer.from("hi"))],
    ["a continuation with nothing to continue", frame(0x80, Buffer.from("{}"))],
  ];

  it.each(violations)("cuts the link on %s without a close frame (clients see 1006)", async (_name, bad) => {
    const link = await attached();
    link.write(bad);
    await link.closed;
    expect(frames(link.data).map((f) => f.opcode)).toEqual([1]);
    const fresh = await attached();
    fresh.socket.destroy();
  });

  it("reads an unmasked frame as masked by its first four payload bytes: uWS does not check the mask bit", async () => {
    const link = await attached();
    // Unmasked, length 2: four zero bytes and "hi". uWS takes the zeros as the mask and reads "hi".
    link.write(Buffer.from([0x81, 0x02, 0, 0, 0, 0, 0x68, 0x69]));
    const error = await link.until("an error frame", (data) => frames(data)[1]);
    expect(JSON.parse(error.payload.toString())).toMatchObject({ type: "error", code: ErrorCode.InvalidJson });
    link.socket.destroy();
  });
});

const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));

// The guard reads /proc, and the test lowers the limit with bash's ulimit: Linux only.
describe.runIf(process.platform === "linux")("near the open-files limit", () => {
  const LIMIT = 128;
  let child: ChildProcess;
  let port: number;
  beforeAll(async () => {
    // bash sets both the soft and the hard limit, so Node cannot raise it again at startup.
    child = spawn("bash", ["-c", `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, ...NODE_FLAGS, CLI, "serve"], {
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn", AGENTWIRE_FD_HEADROOM: "32" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (c) => {
        out += c;
        const line = out.split("\n").find((l) => l.startsWith('{"listening"'));
        if (line) resolve(JSON.parse(line).listening as number);
      });
      child.once("exit", (code) => reject(new Error(`server exited with ${code} before listening`)));
    });
  });
  afterAll(() => child.kill("SIGKILL"));

  it("answers 503 overloaded with Retry-After and closes the link instead of leaving new links hanging", { timeout: 30_000 }, async () => {
    const links: Link[] = [];
    let refused: { link: Link; reply: Reply } | null = null;
    // Far more links than the limit allows, each bounded in time: a hang fails the test, not the suite.
    for (let i = 0; i < 2 * LIMIT && !refused; i++) {
      const link = (await Link.open(port)).write("GET /v1/sessions/s_none HTTP/1.1\r\nHost: x\r\n\r\n");
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`link ${i} got no answer`)), 5000)));
      const reply = await Promise.race([link.reply(), hung]).finally(() => clearTimeout(timer));
      links.push(link);
      if (reply.status.startsWith("HTTP/1.1 503")) refused = { link, reply };
      else expect(reply.status, `link ${i}`).toBe("HTTP/1.1 401 Unauthorized");
    }
    expect(refused, "no 503 before the limit").not.toBeNull();
    const { link, reply } = refused as { link: Link; reply: Reply };
    expect(reply.status).toBe("HTTP/1.1 503 Service Unavailable");
    expect(reply.headers.connection).toBe("close");
    expect(Number(reply.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(reply.body)).toMatchObject({ error: { code: ErrorCode.Overloaded, retryable: true, retryAfterMs: expect.any(Number) } });
    await link.closed;

    // Health checks still answer; once links go, new work is taken again.
    const health = (await Link.open(port)).write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect((await health.reply()).status).toBe("HTTP/1.1 200 OK");
    for (const l of [...links, health]) l.socket.destroy();
    await eventually("POST /v1/sessions answered 201", async () => (await fetch(`http://127.0.0.1:${port}/v1/sessions`, { method: "POST" })).status === 201);
  });
});
