// The operator's policy over what a session sends upstream: allowed models, the system prompt chain
// (operator, identity, client), a token's tools, checked against the exact requests a fake OpenAI-compatible
// upstream records; and the startup rule that keeps a spending agent from running open by accident (real CLI).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.js";
import { FakeUpstream } from "../helpers/fake-upstream.js";
import { openai } from "../helpers/fake-provider.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

const SECRET = "policy-test-secret-0123456789abcdefgh";
const OPERATOR = "operator prompt";

/** The fake upstream of the running describe block: one per block, so no keep-alive socket collects listeners across all. */
let fake: FakeUpstream;
function useFakeUpstream(): void {
  beforeAll(async () => {
    fake = await FakeUpstream.start([{ stream: openai.sse([openai.text("hi"), openai.finish("stop"), openai.usage(3, 1)]) }]);
  });
  afterAll(async () => {
    await fake.close();
  });
}

const upstreamEnv = () => ({
  AGENTWIRE_AGENT: "openai",
  // The startup checks run no turn: any address does when no block's fake is up.
  OPENAI_BASE_URL: `${(fake as FakeUpstream | undefined)?.url ?? "http://127.0.0.1:9"}/v1`,
  OPENAI_API_KEY: "upstream-key",
  AGENTWIRE_ALLOWED_MODELS: "m-a,m-b",
  AGENTWIRE_SYSTEM_PROMPT: OPERATOR,
});

const token = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));

/** Creates a session (with `bearer` when given) and opens its WebSocket, welcomed. */
async function connect(server: TestServer, bearer?: string): Promise<TestClient> {
  const res = await fetch(`${server.base}/v1/sessions`, { method: "POST", headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
  expect(res.status).toBe(201);
  const session = (await res.json()) as { sessionId: string; token: string };
  const ws = await TestClient.connect(TestClient.sessionUrl(server.wsBase, session));
  await ws.next("session");
  return ws;
}

/** Sends a configure and resolves with its answer: the ack, or the error naming the refused field. */
async function configure(ws: TestClient, id: string, fields: Record<string, unknown>) {
  ws.send({ type: "configure", id, ...fields });
  await ws.waitUntil((ms) => ms.some((m) => (m.type === "ack" || m.type === "error") && m.id === id), `the answer to ${id}`);
  return ws.messages.find((m) => (m.type === "ack" || m.type === "error") && m.id === id);
}

let inputs = 0;
/** Runs one turn and returns the body of the upstream request it made. */
async function turnBody(ws: TestClient, text = "hello"): Promise<Record<string, unknown>> {
  const n = fake.requests.length;
  const id = `in-${++inputs}`;
  ws.send({ type: "input", id, text });
  const { turn } = await ws.next("ack", (m) => m.id === id);
  expect(turn).toBeDefined();
  const end = await ws.waitForTurnEnd(turn);
  expect(end.status).toBe("completed");
  expect(fake.requests.length).toBe(n + 1);
  return (await fake.request(n)).body;
}

const systemOf = (body: Record<string, unknown>) => (body.messages as { role: string; content: string }[]).filter((m) => m.role === "system");
const toolNames = (body: Record<string, unknown>) => ((body.tools as { function: { name: string } }[] | undefined) ?? []).map((t) => t.function.name);
const tool = (name: string) => ({ name, description: `the ${name} tool`, parameters: { type: "object", properties: {} } });

describe("open mode with AGENTWIRE_ALLOWED_MODELS and AGENTWIRE_SYSTEM_PROMPT", () => {
  useFakeUpstream();
  let server: TestServer;
  let ws: TestClient | undefined;
  beforeAll(async () => {
    server = await startTestServer({ ...upstreamEnv(), AGENTWIRE_AUTH: "none" });
  });
  afterEach(() => {
    ws?.close();
    ws = undefined;
  });
  afterAll(async () => {
    await server.close();
  });

  it("without a configure: the first allowed model, the operator's prompt alone, every server tool", async () => {
    ws = await connect(server);
    const body = await turnBody(ws);
    expect(body.model).toBe("m-a");
    expect(systemOf(body)).toEqual([{ role: "system", content: OPERATOR }]);
    expect(toolNames(body)).toEqual(["calculator", "clock"]);
  });

  it("a model outside the list is forbidden (field model); an allowed one and the client's prompt reach the upstream", async () => {
    ws = await connect(server);
    expect(await configure(ws, "c1", { model: "m-x" })).toMatchObject({ type: "error", code: "forbidden", field: "model", retryable: false });
    expect(await configure(ws, "c2", { model: "m-b", system: "client prompt" })).toEqual({ type: "ack", id: "c2" });
    const body = await turnBody(ws);
    expect(body.model).toBe("m-b");
    expect(systemOf(body)).toEqual([{ role: "system", content: "operator prompt\n\nclient prompt" }]);
    expect((body.messages as unknown[]).at(-1)).toEqual({ role: "user", content: "hello" });
  });
});

describe("a client token's model, prompt and tools (AGENTWIRE_JWT_SECRET)", () => {
  useFakeUpstream();
  let server: TestServer;
  let ws: TestClient | undefined;
  beforeAll(async () => {
    server = await startTestServer({ ...upstreamEnv(), AGENTWIRE_AUTH: "auto", AGENTWIRE_JWT_SECRET: SECRET });
  });
  afterEach(() => {
    ws?.close();
    ws = undefined;
  });
  afterAll(async () => {
    await server.close();
  });

  it("a pinned model cannot be changed (even to another allowed one); prompts chain operator, identity, client", async () => {
    ws = await connect(server, await token({ sub: "u-pinned", model: "m-a", system: "identity prompt" }));
    expect(await configure(ws, "c1", { model: "m-b" })).toMatchObject({ type: "error", code: "forbidden", field: "model" });
    // The refused configure changed nothing; naming the pinned model itself is no change and is taken.
    expect(await configure(ws, "c2", { model: "m-a", system: "client prompt" })).toEqual({ type: "ack", id: "c2" });
    const body = await turnBody(ws);
    expect(body.model).toBe("m-a");
    expect(systemOf(body)).toEqual([{ role: "system", content: "operator prompt\n\nidentity prompt\n\nclient prompt" }]);
  });

  it("without a client prompt the chain is operator then identity", async () => {
    ws = await connect(server, await token({ sub: "u-identity", system: "identity prompt" }));
    const body = await turnBody(ws);
    expect(systemOf(body)).toEqual([{ role: "system", content: "operator prompt\n\nidentity prompt" }]);
  });

  it("a tools claim refuses other client tools (field tools.<i>.name) and offers the upstream only the listed server tools", async () => {
    ws = await connect(server, await token({ sub: "u-tools", tools: ["calculator", "lookup"] }));
    expect(await configure(ws, "c1", { tools: [tool("x")] })).toMatchObject({ type: "error", code: "forbidden", field: "tools.0.name" });
    expect(await configure(ws, "c2", { tools: [tool("lookup"), tool("x")] })).toMatchObject({ type: "error", code: "forbidden", field: "tools.1.name" });
    const first = await turnBody(ws);
    // Nothing of the refused declarations stayed; of the server's calculator and clock, only the calculator.
    expect(toolNames(first)).toEqual(["calculator"]);
    expect(await configure(ws, "c3", { tools: [tool("lookup")] })).toEqual({ type: "ack", id: "c3" });
    const second = await turnBody(ws, "again");
    expect(toolNames(second)).toEqual(["calculator", "lookup"]);
  });

  it("tools: [\"calculator\"] alone: a client tool named x is forbidden, the upstream sees only calculator", async () => {
    ws = await connect(server, await token({ sub: "u-calc", tools: ["calculator"] }));
    expect(await configure(ws, "c1", { tools: [tool("x")] })).toMatchObject({ type: "error", code: "forbidden", field: "tools.0.name" });
    expect(toolNames(await turnBody(ws))).toEqual(["calculator"]);
  });
});

describe("AGENTWIRE_CLIENT_SYSTEM_PROMPT=false", () => {
  useFakeUpstream();
  let server: TestServer;
  let ws: TestClient | undefined;
  beforeAll(async () => {
    server = await startTestServer({ ...upstreamEnv(), AGENTWIRE_AUTH: "none", AGENTWIRE_CLIENT_SYSTEM_PROMPT: false });
  });
  afterAll(async () => {
    ws?.close();
    await server.close();
  });

  it("a configure with a system prompt is forbidden (field system) and changes nothing, its model included", async () => {
    ws = await connect(server);
    expect(await configure(ws, "c1", { model: "m-b", system: "client prompt" })).toMatchObject({ type: "error", code: "forbidden", field: "system" });
    const body = await turnBody(ws);
    expect(body.model).toBe("m-a");
    expect(systemOf(body)).toEqual([{ role: "system", content: OPERATOR }]);
    expect(await configure(ws, "c2", { model: "m-b" })).toEqual({ type: "ack", id: "c2" });
    expect((await turnBody(ws, "again")).model).toBe("m-b");
  });
});

// ---- the startup rule, through the real CLI ----

const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));
const running = new Set<ChildProcess>();

/** The environment without any agentwire, provider or listener setting of the machine running the tests. */
function cleanEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(AGENTWIRE_|OPENAI_|ANTHROPIC_|REDIS_)/.test(k) || ["PORT", "HOST", "LOG_LEVEL"].includes(k)) continue;
    out[k] = v;
  }
  return out;
}

type LogLine = { level: number; msg: string; [k: string]: unknown };

interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The port of the `{"listening":...}` line; rejects if the process exits first. */
  listening: Promise<number>;
  /** The first pino line `predicate` holds for (pino writes asynchronously: after the listening line, maybe). */
  logLine(predicate: (line: LogLine) => boolean, label: string): Promise<LogLine>;
  exited: Promise<number | null>;
}

/** pino's JSON lines of stdout (the listening line is not one). */
const logLines = (stdout: string) =>
  stdout
    .split("\n")
    .filter((l) => l.startsWith('{"level"'))
    .map((l) => JSON.parse(l) as LogLine);

function serve(env: Record<string, string>): Cli {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\``);
  const child = spawn(process.execPath, [CLI, "serve"], { env: { ...cleanEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const wake: (() => void)[] = [];
  child.stdout?.on("data", (c) => {
    stdout += c;
    for (const w of wake.splice(0)) w();
  });
  const listening = new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", () => {
      const line = stdout.split("\n").find((l) => l.startsWith('{"listening"'));
      if (line) resolve((JSON.parse(line) as { listening: number }).listening);
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before listening:\n${stdout}\n${stderr}`)));
  });
  listening.catch(() => {});
  const logLine = (predicate: (line: LogLine) => boolean, label: string) =>
    new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for the log line ${label}:\n${stdout}`)), 10_000);
      const check = () => {
        const found = logLines(stdout).find(predicate);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        } else wake.push(check);
      };
      check();
    });
  return { child, stdout: () => stdout, stderr: () => stderr, listening, logLine, exited };
}

describe("the startup rule (in process)", () => {
  it("AGENTWIRE_AUTH=required without any credential is a configuration error naming AGENTWIRE_AUTH, with the demo agent too", async () => {
    for (const env of [{ AGENTWIRE_AUTH: "required" }, { ...upstreamEnv(), AGENTWIRE_AUTH: "required" }, { ...upstreamEnv(), AGENTWIRE_AUTH: "auto" }]) {
      const err = await startTestServer(env).then(
        async (s) => {
          await s.close();
          return null;
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.variable)).toEqual(["AGENTWIRE_AUTH"]);
    }
  });
});

describe("the startup rule (agentwire serve)", () => {
  afterEach(async () => {
    for (const child of running) {
      child.kill("SIGKILL");
    }
  });

  it("a spending agent with no credentials and AGENTWIRE_AUTH unset exits 2, naming AGENTWIRE_AUTH", async () => {
    const cli = serve({ AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: "http://127.0.0.1:9/v1", PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn" });
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toContain("agentwire: invalid configuration: AGENTWIRE_AUTH:");
    expect(cli.stderr()).toContain("AGENTWIRE_API_KEYS");
    expect(cli.stdout()).not.toContain('"listening"');
  });

  it("the same with AGENTWIRE_AUTH=none starts, and warns of open mode on 0.0.0.0", async () => {
    const cli = serve({ AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: "http://127.0.0.1:9/v1", AGENTWIRE_AUTH: "none", PORT: "0", HOST: "0.0.0.0", LOG_LEVEL: "warn" });
    const port = await cli.listening;
    const warning = await cli.logLine((l) => l.msg.includes("open mode"), "open mode");
    expect(warning).toMatchObject({ level: 40, host: "0.0.0.0", agent: "openai" });
    const created = await fetch(`http://127.0.0.1:${port}/v1/sessions`, { method: "POST" });
    expect(created.status).toBe(201);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("the demo agent with no auth configuration starts in open mode (no warning on loopback)", async () => {
    const cli = serve({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", AGENTWIRE_DEMO_TOKENS_PER_SEC: "0" });
    const port = await cli.listening;
    const listening = await cli.logLine((l) => l.msg === "agentwire listening", "agentwire listening");
    expect(listening).toMatchObject({ auth: "none", agent: "demo", port });
    // A warning would have been logged before the listening line, in the same stream.
    expect(logLines(cli.stdout()).some((l) => l.msg.includes("open mode"))).toBe(false);
    const created = await fetch(`http://127.0.0.1:${port}/v1/sessions`, { method: "POST" });
    expect(created.status).toBe(201);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });
});
