// The SSE twin of the WebSocket token load: one event stream per session, each turn started by a POST, tokens counted from the data lines' bytes.
import { Agent, request } from "node:http";
import { type RawSse, connectRawSse } from "./raw-sse-client.js";
import { type LoadResult, type SseLoadJob, type WindowEdge, countFrame, measureWindow, newCounters } from "./token-load.js";

export type { SseLoadJob } from "./token-load.js";


/** POSTs client messages over keep-alive connections; a refusal is reported, never thrown. */
class MessagePoster {
  private readonly agent: Agent;

  constructor(
    private readonly job: SseLoadJob,
    private readonly onRefused: (detail: string) => void,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: job.sessions.length });
  }

  post(sessionId: string, token: string): void {
    const body = this.job.inputBody;
    const req = request(
      {
        host: this.job.host,
        port: this.job.port,
        agent: this.agent,
        method: "POST",
        path: `/v1/sessions/${sessionId}/messages?token=${token}`,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        if (res.statusCode === 202) {
          res.resume();
          return;
        }
        let text = "";
        res.setEncoding("utf8").on("data", (t: string) => {
          text += t;
        });
        res.on("end", () => this.onRefused(`POST messages answered ${res.statusCode}: ${text.slice(0, 200)}`));
      },
    );
    req.on("error", (err) => this.onRefused(`POST messages failed: ${err.message}`));
    req.end(body);
  }

  close(): void {
    this.agent.destroy();
  }
}

export async function runSseLoad(job: SseLoadJob, onEdge?: (edge: WindowEdge) => void): Promise<LoadResult> {
  const c = newCounters();
  let running = true;
  let firstError: string | null = null;
  const fail = (detail: string) => {
    c.errors++;
    firstError ??= detail;
  };
  const poster = new MessagePoster(job, fail);
  const streams: RawSse[] = await Promise.all(
    job.sessions.map(({ sessionId, token }) =>
      connectRawSse({
        host: job.host,
        port: job.port,
        path: `/v1/sessions/${sessionId}/events?token=${token}`,
        onBytes: (n) => {
          c.bytes += n;
        },
        onEvent: (buf, s, e) => {
          const kind = countFrame(c, buf, s, e);
          if (kind === "turn_end" && running) poster.post(sessionId, token);
          else if (kind === "error") firstError ??= buf.toString("utf8", s, Math.min(e, s + 300));
        },
        onClose: () => {
          if (running) fail("the server ended an event stream");
        },
      }),
    ),
  );
  // Streams are attached (welcome seen) before the first turn starts, so no event of it is missed.
  for (const { sessionId, token } of job.sessions) poster.post(sessionId, token);

  const result = await measureWindow(job, c, onEdge);
  running = false;
  for (const stream of streams) stream.close();
  poster.close();
  return { ...result, firstError };
}
