import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));

function run(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it)`);
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: "silent", ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c) => (stdout += c));
  child.stderr?.on("data", (c) => (stderr += c));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

describe("agentwire CLI", () => {
  it("--help prints usage and exits 0", async () => {
    const { code, stdout } = await run(["serve", "--help"]).done;
    expect(code).toBe(0);
    expect(stdout).toContain("agentwire serve");
  });

  it("exits 2 naming the variable on bad configuration", async () => {
    const { code, stderr } = await run(["serve"], { PORT: "nope" }).done;
    expect(code).toBe(2);
    expect(stderr).toContain("PORT");
  });

  it("serves a session on PORT=0 and stops cleanly on SIGTERM", async () => {
    const { child, done } = run(["serve"], { PORT: "0", HOST: "127.0.0.1", AGENTWIRE_DEMO_TOKENS_PER_SEC: "0" });
    const port = await new Promise<number>((resolve, reject) => {
      let buf = "";
      child.stdout?.on("data", (c) => {
        buf += c;
        const line = buf.split("\n").find((l) => l.startsWith('{"listening"'));
        if (line) resolve(JSON.parse(line).listening);
      });
      child.on("exit", () => reject(new Error("exited early")));
    });
    const res = await fetch(`http://127.0.0.1:${port}/v1/sessions`, { method: "POST" });
    const s = (await res.json()) as { sessionId: string; token: string };
    const client = await TestClient.connect(TestClient.sessionUrl(`ws://127.0.0.1:${port}`, s));
    client.send({ type: "input", text: "3 * 3" });
    const end = await client.waitForTurnEnd();
    expect(end.status).toBe("completed");
    child.kill("SIGTERM");
    expect(await client.waitClosed()).toBe(4001);
    expect(client.messages.at(-1)).toMatchObject({ type: "drain", reason: "server_draining" });
    expect((await done).code).toBe(0);
  });

  it("exits 3 when its port is taken, and the first server keeps every request", async () => {
    const first = run(["serve"], { PORT: "0", HOST: "127.0.0.1" });
    const port = await new Promise<number>((resolve, reject) => {
      let buf = "";
      first.child.stdout?.on("data", (c) => {
        buf += c;
        const line = buf.split("\n").find((l) => l.startsWith('{"listening"'));
        if (line) resolve(JSON.parse(line).listening);
      });
      first.child.on("exit", () => reject(new Error("exited early")));
    });
    const second = await run(["serve"], { PORT: String(port), HOST: "127.0.0.1" }).done;
    expect(second.code).toBe(3);
    expect(second.stderr).toContain(`127.0.0.1:${port}`);
    // Every create is answered by the one server, so every snapshot right after it is found.
    for (let i = 0; i < 20; i++) {
      const created = (await (await fetch(`http://127.0.0.1:${port}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
      const snapshot = await fetch(`http://127.0.0.1:${port}/v1/sessions/${created.sessionId}`, { headers: { authorization: `Bearer ${created.token}` } });
      expect(snapshot.status).toBe(200);
    }
    first.child.kill("SIGTERM");
    expect((await first.done).code).toBe(0);
  });

  it("chat: --help is usage, not a question; an unknown option exits 2; the server is found on PORT", async () => {
    const help = await run(["chat", "--help"]).done;
    expect([help.code, help.stdout.includes("agentwire chat")]).toEqual([0, true]);
    const bogus = await run(["chat", "--bogus", "hi"]).done;
    expect(bogus.code).toBe(2);
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: 3 });
    const answered = await run(["chat", "what is 6 * 7"], { PORT: String(server.port) }).done;
    expect(answered.code).toBe(0);
    expect(answered.stdout).toContain("42");
    await server.close();
  });

  it("chat: without text, each piped line is a turn, in order; a URL without a scheme works", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: 2 });
    const { child, done } = run(["chat", "--url", `127.0.0.1:${server.port}`]);
    child.stdin?.end("what is 2 + 2\n\nwhat is 3 * 3\n");
    const { code, stdout } = await done;
    expect(code).toBe(0);
    const ends = stdout.split("\n").filter((l) => l.startsWith("["));
    expect(ends).toEqual(["[completed: stop]", "[completed: stop]"]);
    expect(stdout.indexOf("says 4")).toBeLessThan(stdout.indexOf("says 9"));
    await server.close();
  });

  it("chat: Ctrl-C cancels the running turn, a second Ctrl-C exits; refusals are printed in full", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 20, AGENTWIRE_DEMO_REPLY_WORDS: 200, AGENTWIRE_MAX_INPUT_CHARS: 40 });
    const { child, done } = run(["chat", "--url", server.base]);
    let out = "";
    child.stdout?.on("data", (c) => (out += c));
    child.stdin?.write(`${"x".repeat(50)}\n`);
    child.stdin?.write("tell me a long story\n");
    await new Promise<void>((resolve) => child.stdout?.on("data", () => out.includes("Let me") && resolve()));
    child.kill("SIGINT");
    await new Promise<void>((resolve) => child.stdout?.on("data", () => out.includes("[cancelled: cancelled]") && resolve()));
    child.kill("SIGINT");
    const { code, stderr } = await done;
    expect(stderr).toContain("[not sent: input_too_large: input exceeds 40 characters (field text)]");
    expect(stderr).toContain("[cancelling: Ctrl-C again to exit]");
    expect(code).toBe(1); // one input was refused
    await server.close();
  });

  it("chat: a closed pipe ends it quietly", async () => {
    const server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 200, AGENTWIRE_DEMO_REPLY_WORDS: 100 });
    const { child, done } = run(["chat", "--url", server.base, "what is 5 * 5"]);
    child.stdout?.once("data", () => child.stdout?.destroy());
    const { code, stderr } = await done;
    expect([code, stderr]).toEqual([0, ""]);
    await server.close();
  });
});
