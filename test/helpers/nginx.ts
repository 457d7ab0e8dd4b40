// Runs the documented nginx recipe (docs/deploy/nginx.conf) in a temp dir, in front of a test server.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { requireBinaryOrSkip } from "./require-binary.js";

const RECIPE = new URL("../../docs/deploy/nginx.conf", import.meta.url);

/** The nginx binary, or null when it is not installed (Debian puts it in /usr/sbin, often off a user's PATH). */
export function findNginx(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" }).trim() || null;
  } catch {
    return existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null;
  }
}

/** The nginx binary when the nginx tests should run; missing nginx is fatal on CI and a loud skip (null) elsewhere. */
export function requireNginxOrSkip(): string | null {
  const binary = findNginx();
  return requireBinaryOrSkip("docs/deploy/nginx.conf tests", binary ? null : "nginx is not installed", "apt-get install nginx-light") ? binary : null;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Replaces `from` exactly once, so a recipe that drifted from what the test expects fails loudly. */
function replaceOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`docs/deploy/nginx.conf must contain "${from}" exactly once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

export interface RunningNginx {
  port: number;
  base: string;
  wsBase: string;
  /** The recipe's access log, written here (in the recipe's own format). */
  accessLog: string;
  stop(): Promise<void>;
}

export async function startNginx(binary: string, upstreamPort: number): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), "agentwire-nginx-"));
  // Workers drop root for an unprivileged user: let them write their temp files here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  let conf = readFileSync(RECIPE, "utf8");
  conf = replaceOnce(conf, "worker_processes auto;", "worker_processes 1;");
  conf = replaceOnce(conf, "server 127.0.0.1:8080;", `server 127.0.0.1:${upstreamPort};`);
  conf = replaceOnce(conf, "listen 80;", `listen 127.0.0.1:${port};`);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${join(dir, t)};`).join("\n");
  const accessLog = join(dir, "access.log");
  conf = replaceOnce(conf, "access_log /var/log/nginx/access.log agentwire;", `access_log ${accessLog} agentwire;`);
  conf = replaceOnce(conf, "http {", `http {\n${temp}`);
  const confPath = join(dir, "nginx.conf");
  writeFileSync(confPath, conf);

  const child: ChildProcess = spawn(binary, ["-p", dir, "-c", confPath, "-e", "stderr", "-g", `daemon off; pid ${join(dir, "nginx.pid")}; error_log stderr warn;`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (t: string) => (stderr += t));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));

  // Ready once it accepts a connection; until then every refusal is retried, a dead process is not.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!running) throw new Error(`nginx exited at startup: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  return {
    port,
    base: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
    accessLog,
    async stop() {
      if (running) {
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
