// Creates agentwire sessions in bulk over a few keep-alive HTTP connections.
import { Agent, request } from "node:http";

export interface CreatedSession {
  sessionId: string;
  token: string;
}

function createOne(host: string, port: number, agent: Agent): Promise<CreatedSession> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, agent, method: "POST", path: "/v1/sessions", headers: { "content-length": "0" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (text: string) => {
        body += text;
      });
      res.on("end", () => {
        if (res.statusCode !== 201) reject(new Error(`POST /v1/sessions answered ${res.statusCode}: ${body.slice(0, 200)}`));
        else resolve(JSON.parse(body) as CreatedSession);
      });
    });
    req.on("error", reject);
    req.end();
  });
}

export async function createSessions(host: string, port: number, count: number, connections = 8): Promise<CreatedSession[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const out: CreatedSession[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      out.push(await createOne(host, port, agent));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(connections, count) }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}
