// Creates agentwire sessions in bulk over a few keep-alive HTTP connections.
import { Agent, request } from "node:http";

export interface CreatedSession {
  sessionId: string;
  token: string;
}

/** What one create request carries beyond the bare POST: a credential and a JSON body (an API-key holder's `user`). */
export interface CreateRequest {
  /** The whole `Authorization` header value, `Bearer <API key or JWT>`. */
  authorization?: string;
  body?: string;
}

export interface CreateOptions {
  /** Requests in flight at once, one keep-alive connection each. @default 8 */
  connections?: number;
  /** The credential and body of the `index`-th create (0-based, in the order the requests are sent). Absent: open mode. */
  request?: (index: number) => CreateRequest;
  /** A request with no answer after this long fails the whole batch. Absent: no bound. */
  timeoutMs?: number;
}

function createOne(host: string, port: number, agent: Agent, extra: CreateRequest, timeoutMs: number | undefined): Promise<CreatedSession> {
  return new Promise((resolve, reject) => {
    const body = extra.body ?? "";
    const headers: Record<string, string> = { "content-length": String(Buffer.byteLength(body)) };
    if (body !== "") headers["content-type"] = "application/json";
    if (extra.authorization !== undefined) headers.authorization = extra.authorization;
    const req = request({ host, port, agent, method: "POST", path: "/v1/sessions", headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => {
        if (res.statusCode !== 201) reject(new Error(`POST /v1/sessions answered ${res.statusCode}: ${text.slice(0, 200)}`));
        else resolve(JSON.parse(text) as CreatedSession);
      });
    });
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`POST /v1/sessions: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

export async function createSessions(host: string, port: number, count: number, options: CreateOptions = {}): Promise<CreatedSession[]> {
  const { connections = 8, request: requestFor, timeoutMs } = options;
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const out: CreatedSession[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      out.push(await createOne(host, port, agent, requestFor?.(index) ?? {}, timeoutMs));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(connections, count) }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}
