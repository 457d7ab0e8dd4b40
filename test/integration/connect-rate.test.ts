import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "@agentwire/protocol";
import { type TestServer, startTestServer } from "../helpers/server.js";

const RATE = 50;
const BURST = 5;
/** The measurement needs wall time: a rate cannot be read off a few requests. */
const WINDOW_MS = 2500;
const MAX_ATTEMPTS = 4000;
/** Attempts in flight at once, so the client outpaces the limit by far even on a busy machine. */
const PARALLEL = 4;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One raw WebSocket upgrade on a fresh TCP connection: the response head, and the body when it is not a 101. */
function upgrade(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let pending = Buffer.alloc(0);
    let answer: Answer | null = null;
    let bodyStart = 0;
    const finish = (a: Answer) => {
      socket.destroy();
      resolve(a);
    };
    socket.on("data", (data) => {
      pending = Buffer.concat([pending, data]);
      if (!answer) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        const [statusLine = "", ...lines] = pending.subarray(0, end).toString("latin1").split("\r\n");
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(":");
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        answer = { status: Number(statusLine.split(" ")[1]), headers, body: "" };
        bodyStart = end + 4;
        if (answer.status === 101) return finish(answer);
      }
      const length = Number(answer.headers["content-length"] ?? 0);
      if (pending.length - bodyStart >= length) finish({ ...answer, body: pending.subarray(bodyStart, bodyStart + length).toString("utf8") });
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("connection closed before a complete answer")));
  });
}

describe("connect rate per client address, measured against the real server", () => {
  let server: TestServer;
  let path: string;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_CONNECT_RATE_PER_IP: RATE, AGENTWIRE_CONNECT_BURST_PER_IP: BURST });
    const s = await server.createSession();
    path = `/v1/sessions/${s.sessionId}/ws?token=${s.token}`;
  });
  afterAll(() => server.close());

  it("admits burst + rate x elapsed upgrades from one address, and every refusal says how long to wait", async () => {
    const answers: Answer[] = [];
    const started = performance.now();
    let lastAnswer = started;
    let sent = 0;
    const worker = async () => {
      while (sent < MAX_ATTEMPTS && performance.now() - started < WINDOW_MS) {
        sent++;
        answers.push(await upgrade(server.port, path));
        lastAnswer = performance.now();
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const elapsedS = (lastAnswer - started) / 1000;

    const admitted = answers.filter((a) => a.status === 101).length;
    const refused = answers.filter((a) => a.status === 429);
    expect(admitted + refused.length).toBe(answers.length);
    // The client must have pushed well past the limit, or the count says nothing about it.
    expect(answers.length).toBeGreaterThan(2 * (BURST + RATE * elapsedS));
    const expected = BURST + RATE * elapsedS;
    expect(Math.abs(admitted - expected) / expected, `admitted ${admitted} in ${elapsedS.toFixed(3)} s, expected ${expected.toFixed(1)}`).toBeLessThanOrEqual(0.1);

    for (const answer of refused) {
      const { error } = JSON.parse(answer.body) as { error: { code: string; retryable: boolean; retryAfterMs: number } };
      expect(error.code).toBe(ErrorCode.RateLimited);
      expect(error.retryable).toBe(true);
      // One token is 1000 / RATE ms away at most, and the wait is whole ms.
      expect(Number.isInteger(error.retryAfterMs)).toBe(true);
      expect(error.retryAfterMs).toBeGreaterThanOrEqual(1);
      expect(error.retryAfterMs).toBeLessThanOrEqual(1000 / RATE);
      expect(answer.headers["retry-after"]).toBe(String(Math.ceil(error.retryAfterMs / 1000)));
    }
  });
});
