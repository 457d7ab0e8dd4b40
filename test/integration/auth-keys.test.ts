// Operator API keys on POST /v1/sessions: who may create, the identity a key (and a body's `user`) gives,
// body validation, rotation through the key file (explicit reload and the file watcher), and `agentwire keygen`.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { demoTools } from "../../src/agents/demo-tools.js";
import { type Config, ConfigError, configFrom } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { TEST_DEFAULTS, type TestServer, startTestServer } from "../helpers/server.js";

const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));

const BACKEND_SECRET = "backend-secret-0123456789-abcdef";
const OPS_SECRET = "ops-secret-zyxwvutsrq-9876543210";
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/** Auth on, per-identity limits off (these tests create many sessions from one identity). */
const AUTH = { AGENTWIRE_AUTH: "auto", AGENTWIRE_IDENTITY_MAX_SESSIONS: 0, AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: 0 } as const;

interface Answer {
  status: number;
  body: Record<string, unknown> | null;
  error: Record<string, unknown> | undefined;
}

async function create(base: string, options: { bearer?: string; body?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.bearer !== undefined) headers.authorization = `Bearer ${options.bearer}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}/v1/sessions`, { method: "POST", headers, body: options.body });
  const text = await res.text();
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
  return { status: res.status, body, error: body?.error as Record<string, unknown> | undefined };
}

describe("API keys from AGENTWIRE_API_KEYS", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...AUTH, AGENTWIRE_API_KEYS: `backend=${BACKEND_SECRET},ops=sha256:${sha256(OPS_SECRET)}` });
  });
  afterAll(async () => {
    await server.close();
  });

  it("a create without Authorization is 401 unauthorized", async () => {
    const answer = await create(server.base);
    expect(answer.status).toBe(401);
    expect(answer.error).toMatchObject({ code: "unauthorized", retryable: false });
    expect(server.engine.sessionCount).toBe(0);
  });

  it("a wrong key is 401 unauthorized, and so is a near miss of a real one", async () => {
    for (const bearer of ["not-a-key-of-this-server-at-all", `${BACKEND_SECRET}x`, BACKEND_SECRET.slice(0, -1), sha256(OPS_SECRET), `sha256:${sha256(OPS_SECRET)}`]) {
      const answer = await create(server.base, { bearer });
      expect([bearer, answer.status, answer.error?.code]).toEqual([bearer, 401, "unauthorized"]);
    }
    expect(server.engine.sessionCount).toBe(0);
  });

  it("each valid key creates a session (201) whose identity is the key's name", async () => {
    const backend = await create(server.base, { bearer: BACKEND_SECRET });
    expect(backend.status).toBe(201);
    const ops = await create(server.base, { bearer: OPS_SECRET });
    expect(ops.status).toBe(201);
    expect(server.engine.get(backend.body?.sessionId as string)?.principal.identity).toBe("key:backend");
    expect(server.engine.get(ops.body?.sessionId as string)?.principal.identity).toBe("key:ops");
  });

  it("a valid key with {user} acts for that user: identity key:<name>/<user>", async () => {
    const answer = await create(server.base, { bearer: BACKEND_SECRET, body: JSON.stringify({ user: "u1" }) });
    expect(answer.status).toBe(201);
    const principal = server.engine.get(answer.body?.sessionId as string)?.principal;
    expect(principal?.identity).toBe("key:backend/u1");
    // Nothing else was asked for: no pin of model, prompt or tools.
    expect(principal).not.toHaveProperty("model");
    expect(principal).not.toHaveProperty("system");
    expect(principal).not.toHaveProperty("tools");
  });

  it("a key holder's body settings land on the principal", async () => {
    const body = { user: "u2", model: "m-1", system: "be brief", tools: ["calculator"], limits: { turns: 2 } };
    const answer = await create(server.base, { bearer: OPS_SECRET, body: JSON.stringify(body) });
    expect(answer.status).toBe(201);
    expect(server.engine.get(answer.body?.sessionId as string)?.principal).toEqual({
      identity: "key:ops/u2",
      model: "m-1",
      system: "be brief",
      tools: ["calculator"],
      limits: { sessions: 0, connections: 0, turns: 2, sessions_per_minute: 0, tokens_per_minute: 0, tokens_per_day: 0 },
    });
  });

  it("a body field of the wrong type is 400 invalid_message naming the field", async () => {
    const answer = await create(server.base, { bearer: BACKEND_SECRET, body: JSON.stringify({ user: 42 }) });
    expect(answer.status).toBe(400);
    expect(answer.error).toMatchObject({ code: "invalid_message", field: "user" });
    const nested = await create(server.base, { bearer: BACKEND_SECRET, body: JSON.stringify({ limits: { turns: -1 } }) });
    expect(nested.status).toBe(400);
    expect(nested.error).toMatchObject({ code: "invalid_message", field: "limits.turns" });
  });

  it("a body with an unknown field is 400 invalid_message", async () => {
    const before = server.engine.sessionCount;
    const answer = await create(server.base, { bearer: BACKEND_SECRET, body: JSON.stringify({ user: "u1", colour: "blue" }) });
    expect(answer.status).toBe(400);
    expect(answer.error?.code).toBe("invalid_message");
    expect(server.engine.sessionCount).toBe(before);
  });

  it("a body with an unknown field names it in `field` (top level and nested)", async () => {
    const top = await create(server.base, { bearer: BACKEND_SECRET, body: JSON.stringify({ user: "u1", colour: "blue" }) });
    expect(top.error).toMatchObject({ code: "invalid_message", field: "colour" });
    const nested = await create(server.base, { bearer: BACKEND_SECRET, body: JSON.stringify({ limits: { bogus: 1 } }) });
    expect(nested.error).toMatchObject({ code: "invalid_message", field: "limits.bogus" });
  });

  it("a body that is not JSON is 400 invalid_json", async () => {
    const before = server.engine.sessionCount;
    const answer = await create(server.base, { bearer: BACKEND_SECRET, body: "{user: u1" });
    expect(answer.status).toBe(400);
    expect(answer.error).toMatchObject({ code: "invalid_json", retryable: false });
    expect(server.engine.sessionCount).toBe(before);
  });

  it("the key is checked before the body: a wrong key with a bad body is still 401", async () => {
    const answer = await create(server.base, { bearer: "not-a-key-of-this-server-at-all", body: JSON.stringify({ colour: "blue" }) });
    expect(answer.status).toBe(401);
    expect(answer.error?.code).toBe("unauthorized");
  });
});

describe("bad key configuration stops the server before it listens, naming the variable", () => {
  const problemsOf = async (overrides: Parameters<typeof startTestServer>[0]) => {
    const err = (await startTestServer(overrides).then(
      async (s) => {
        await s.close();
        return null;
      },
      (e: unknown) => e,
    )) as ConfigError | null;
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  };

  it("an entry that is not name=secret, a short secret, or a name twice: AGENTWIRE_API_KEYS", async () => {
    for (const value of ["just-a-secret-without-a-name", "short=0123456789", `a=${BACKEND_SECRET},a=${OPS_SECRET}`, "bad name!=0123456789abcdefghij"]) {
      const problems = await problemsOf({ ...AUTH, AGENTWIRE_API_KEYS: value });
      expect([value, problems.map((p) => p.variable)]).toEqual([value, ["AGENTWIRE_API_KEYS"]]);
    }
  });

  it("a key file that is missing or unparsable: AGENTWIRE_API_KEYS_FILE", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentwire-keys-"));
    try {
      const missing = await problemsOf({ ...AUTH, AGENTWIRE_API_KEYS_FILE: join(dir, "nope") });
      expect(missing.map((p) => p.variable)).toEqual(["AGENTWIRE_API_KEYS_FILE"]);
      const garbage = join(dir, "garbage");
      writeFileSync(garbage, "not a key line\n");
      const unparsable = await problemsOf({ ...AUTH, AGENTWIRE_API_KEYS_FILE: garbage });
      expect(unparsable.map((p) => p.variable)).toEqual(["AGENTWIRE_API_KEYS_FILE"]);
      expect(unparsable[0]?.message).toContain(garbage);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A server with a captured log, to wait on the key file's reload reports. */
class LogLines {
  readonly lines: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  readonly sink = new Writable({
    write: (chunk, _encoding, done) => {
      for (const line of String(chunk).split("\n")) if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
      for (const wake of this.waiters.splice(0)) wake();
      done();
    },
  });

  async waitFor(predicate: (line: Record<string, unknown>) => boolean, label: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(predicate);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for the log line: ${label}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

describe("API keys from AGENTWIRE_API_KEYS_FILE: rotation without a restart", () => {
  let dir: string;
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("reloadCredentials() and the file watcher take a rewritten file; a garbage file keeps the previous keys", async () => {
    dir = mkdtempSync(join(tmpdir(), "agentwire-keys-"));
    const file = join(dir, "keys");
    const first = "first-key-aaaaaaaaaaaaaaaaaaaaa";
    const second = "second-key-bbbbbbbbbbbbbbbbbbbb";
    const third = "third-key-cccccccccccccccccccccc";
    writeFileSync(file, `# the backend's key\nalpha=${first}\n`);
    const log = new LogLines();
    const config: Config = configFrom({ ...TEST_DEFAULTS, ...AUTH, AGENTWIRE_API_KEYS_FILE: file });
    server = await startServer({ config, logger: createLogger("info", log.sink), tools: demoTools() });
    const base = `http://127.0.0.1:${server.port}`;
    const created = await create(base, { bearer: first });
    expect(created.status).toBe(201);
    expect(server.engine.get(created.body?.sessionId as string)?.principal.identity).toBe("key:alpha");

    // Revoke the first key, add a second, and reload at once (what SIGHUP does).
    writeFileSync(file, `beta=sha256:${sha256(second)}\n`);
    server.reloadCredentials();
    expect((await create(base, { bearer: first })).status).toBe(401);
    const withSecond = await create(base, { bearer: second });
    expect(withSecond.status).toBe(201);
    expect(server.engine.get(withSecond.body?.sessionId as string)?.principal.identity).toBe("key:beta");

    // Rewrite again without a reload: the watcher (polling every 1000 ms) picks it up on its own.
    writeFileSync(file, `gamma=${third}\n`);
    const deadline = Date.now() + 6000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await create(base, { bearer: third })).status;
      if (status === 201) break;
      expect(status).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(201);
    expect((await create(base, { bearer: second })).status).toBe(401);
    await log.waitFor((l) => l.msg === "API keys reloaded" && l.keys === 1, "the watcher's reload", 1000);

    // A broken edit is reported and changes nothing: the third key still works, the second stays revoked.
    writeFileSync(file, "this line is no key at all\ngamma\n");
    const report = await log.waitFor((l) => l.msg === "API key file not reloaded: keeping the previous keys", "the watcher's refusal", 6000);
    expect(report).toMatchObject({ level: 50, keys: 1 });
    expect(String(report.error)).toContain(file);
    expect((await create(base, { bearer: third })).status).toBe(201);
    expect((await create(base, { bearer: second })).status).toBe(401);
    // An explicit reload of the same broken file keeps them too.
    server.reloadCredentials();
    expect((await create(base, { bearer: third })).status).toBe(201);
    // No log line ever carries a secret.
    const text = JSON.stringify(log.lines);
    for (const secret of [first, second, third]) expect(text).not.toContain(secret);
  });
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\``);
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: "silent" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c) => (stdout += c));
  child.stderr.on("data", (c) => (stderr += c));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

describe("agentwire keygen", () => {
  it("prints a key and a NAME=sha256:<64 hex> line, and that line accepts that key", async () => {
    const [{ code, stdout, stderr }, again] = await Promise.all([runCli(["keygen", "billing-svc"]), runCli(["keygen", "billing-svc"])]);
    expect([code, stderr]).toEqual([0, ""]);
    const key = /: (awk_[A-Za-z0-9_-]{20,})$/m.exec(stdout)?.[1];
    const line = /: (billing-svc=sha256:[0-9a-f]{64})$/m.exec(stdout)?.[1];
    expect(key, stdout).toBeDefined();
    expect(line, stdout).toBeDefined();
    // Only the digest is in the line: the key itself is not.
    expect(line).toBe(`billing-svc=sha256:${sha256(key as string)}`);
    // A new key every time.
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain(key as string);

    const server = await startTestServer({ ...AUTH, AGENTWIRE_API_KEYS: line as string });
    try {
      const ok = await create(server.base, { bearer: key as string });
      expect(ok.status).toBe(201);
      expect(server.engine.get(ok.body?.sessionId as string)?.principal.identity).toBe("key:billing-svc");
      expect((await create(server.base, { bearer: (line as string).split("sha256:")[1] as string })).status).toBe(401);
    } finally {
      await server.close();
    }
  });

  it("refuses a bad name or a missing one with exit code 2", async () => {
    const [bad, missing] = await Promise.all([runCli(["keygen", "no spaces!"]), runCli(["keygen"])]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("no spaces!");
    expect(bad.stdout).toBe("");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("usage: agentwire keygen NAME");
  });
});
