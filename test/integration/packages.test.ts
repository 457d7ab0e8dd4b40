// What `npm pack` ships for each package, and a user's project built on the packed tarballs: the echo agent
// from examples/ compiles against the shipped declarations and serves a turn from the shipped JavaScript.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSessionResponse } from "@agentwire/protocol";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../..", import.meta.url));

interface Packed {
  name: string;
  filename: string;
  files: { path: string }[];
}

async function pack(dir: string, destination: string): Promise<Packed> {
  // The build is up to date (npm test builds first); prepack would rebuild it.
  const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", destination], { cwd: join(repo, dir) });
  return (JSON.parse(stdout) as Packed[])[0] as Packed;
}

const paths = (p: Packed) => p.files.map((f) => f.path).sort();

/** A user's Node program on the installed client. */
const TALK = `import { AgentwireClient } from "@agentwire/client";
import WebSocket from "ws";

const client = new AgentwireClient({ url: process.argv[2] as string, WebSocket, store: null });
await client.connect();
const result = await client.send("hello through the client").done;
console.log(JSON.stringify(result));
client.close();
`;

/** Installs a tarball as npm would lay it out: extracted under node_modules, its declared dependencies beside it. */
async function install(project: string, tarball: string, name: string): Promise<Record<string, string>> {
  const target = join(project, "node_modules", name);
  await mkdir(target, { recursive: true });
  await run("tar", ["-xzf", tarball, "-C", target, "--strip-components=1"]);
  const manifest = JSON.parse(await readFile(join(target, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  return manifest.dependencies ?? {};
}

/** Bare specifiers imported by the shipped JavaScript (static and dynamic), node builtins left out. */
async function importedPackages(dir: string): Promise<Set<string>> {
  const found = new Set<string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".js")) continue;
    const text = await readFile(join(entry.parentPath, entry.name), "utf8");
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)"([^"./][^"]*)"/g)) {
      const spec = m[1] as string;
      if (spec.startsWith("node:") || builtinModules.includes(spec)) continue;
      found.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string));
    }
  }
  return found;
}

describe("the packages as npm ships them", () => {
  let scratch: string;
  let server: Packed;
  let protocol: Packed;
  let client: Packed;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "agentwire-pack-"));
    [server, protocol, client] = await Promise.all([pack(".", scratch), pack("protocol", scratch), pack("client", scratch)]);
  }, 60_000);
  afterAll(() => rm(scratch, { recursive: true, force: true }));

  it("agentwire ships its built JavaScript and declarations, the README, the license and nothing else", () => {
    expect(server.name).toBe("agentwire");
    for (const path of paths(server)) expect(path).toMatch(/^(package\.json|README\.md|LICENSE|dist\/src\/.+\.(js|d\.ts)|dist\/public\/agentwire-client\.min\.js)$/);
    expect(paths(server)).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli.js"]));
  });

  it("@agentwire/protocol ships its built files, the JSON Schema, the README and the license", () => {
    expect(protocol.name).toBe("@agentwire/protocol");
    for (const path of paths(protocol)) expect(path).toMatch(/^(package\.json|README\.md|LICENSE|schema\.json|dist\/[a-z-]+\.(js|d\.ts))$/);
    expect(paths(protocol)).toEqual(expect.arrayContaining(["LICENSE", "README.md", "schema.json", "dist/index.js", "dist/index.d.ts", "dist/codes.js", "dist/codes.d.ts"]));
  });

  it("@agentwire/client ships its built files, the README and the license", () => {
    expect(client.name).toBe("@agentwire/client");
    for (const path of paths(client)) expect(path).toMatch(/^(package\.json|README\.md|LICENSE|dist\/[a-z-]+\.(js|d\.ts))$/);
    expect(paths(client)).toEqual(expect.arrayContaining(["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts"]));
  });

  describe("installed into a new project", () => {
    let project: string;
    let child: ChildProcess | undefined;

    beforeAll(async () => {
      project = join(scratch, "echo-app");
      await mkdir(join(project, "src"), { recursive: true });
      const deps = {
        ...(await install(project, join(scratch, server.filename), "agentwire")),
        ...(await install(project, join(scratch, protocol.filename), "@agentwire/protocol")),
        ...(await install(project, join(scratch, client.filename), "@agentwire/client")),
        // The client's optional peer, for Node 20 (no global WebSocket), with its types as a user installs them.
        ws: "*",
        "@types/ws": "*",
      };
      // Third-party dependencies come from this checkout's node_modules: only the declared ones are reachable.
      for (const dep of Object.keys(deps)) {
        if (dep.startsWith("@agentwire/")) continue;
        await mkdir(join(project, "node_modules", dep, ".."), { recursive: true });
        await symlink(join(repo, "node_modules", dep), join(project, "node_modules", dep), "dir");
      }
      for (const file of ["echo-agent.ts", "echo-server.ts"]) await writeFile(join(project, "src", file), await readFile(join(repo, "examples", file)));
      await writeFile(join(project, "src", "talk.ts"), TALK);
      await writeFile(join(project, "package.json"), JSON.stringify({ name: "echo-app", private: true, type: "module" }));
      const compilerOptions = {
        target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, rootDir: "src", outDir: "dist",
        types: ["node"], typeRoots: [join(repo, "node_modules/@types")], skipLibCheck: false,
      };
      await writeFile(join(project, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["src"] }));
    }, 60_000);
    afterAll(() => {
      child?.kill("SIGKILL");
    });

    it("every package the shipped code imports is a declared dependency", async () => {
      expect([...(await importedPackages(join(project, "node_modules/@agentwire/client/dist")))]).toEqual(["@agentwire/protocol"]);
      const manifest = JSON.parse(await readFile(join(project, "node_modules/agentwire/package.json"), "utf8")) as { dependencies: Record<string, string> };
      expect([...(await importedPackages(join(project, "node_modules/agentwire/dist")))].filter((p) => !(p in manifest.dependencies))).toEqual([]);
      expect([...(await importedPackages(join(project, "node_modules/@agentwire/protocol/dist")))]).toEqual(["zod"]);
    });

    it("@agentwire/protocol/codes loads without zod", async () => {
      const codes = await readFile(join(project, "node_modules/@agentwire/protocol/dist/codes.js"), "utf8");
      expect(codes).not.toMatch(/\bimport\b/);
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", 'const c = await import("@agentwire/protocol/codes"); console.log(c.CloseCode.SessionNotFound, c.ERRORS.turn_active.status)'], { cwd: project });
      expect(stdout.trim()).toBe("4404 409");
    });

    it("the echo agent compiles against the shipped declarations and serves a turn", async () => {
      await run(process.execPath, [join(repo, "node_modules/typescript/bin/tsc"), "-p", project]).catch((err: { stdout?: string }) => {
        throw new Error(`tsc failed in the user's project:\n${err.stdout ?? ""}`);
      });
      const node = spawn(process.execPath, [join(project, "dist/echo-server.js")], { cwd: project, env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", AGENTWIRE_AUTH: "none" }, stdio: ["ignore", "pipe", "pipe"] });
      child = node;
      let output = "";
      const port = await new Promise<number>((resolve, reject) => {
        node.stdout.setEncoding("utf8").on("data", (chunk: string) => {
          output += chunk;
          const m = /on port (\d+)/.exec(output);
          if (m) resolve(Number(m[1]));
        });
        node.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
        node.once("exit", (code) => reject(new Error(`echo server exited with ${code}: ${output}`)));
      });

      const res = await fetch(`http://127.0.0.1:${port}/v1/sessions`, { method: "POST" });
      expect(res.status).toBe(201);
      const created = CreateSessionResponse.parse(await res.json());
      const client = await TestClient.connect(TestClient.sessionUrl(`ws://127.0.0.1:${port}`, created));
      await client.next("session");
      client.send({ type: "input", text: "packed and installed" });
      const end = await client.waitForTurnEnd();
      expect(end).toMatchObject({ status: "completed", reason: "stop" });
      expect(turnText(client.messages, "t1")).toBe("packed and installed");
      expect(logged(client.messages).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      client.close();

      // The installed client, from a second program of the user's: a whole turn through it.
      const talked = await run(process.execPath, [join(project, "dist/talk.js"), `http://127.0.0.1:${port}`], { cwd: project });
      expect(JSON.parse(talked.stdout)).toMatchObject({ status: "completed", reason: "stop", text: "hello through the client" });

      const exited = new Promise<number | null>((resolve) => node.once("exit", resolve));
      node.kill("SIGTERM");
      expect(await exited).toBe(0);
      child = undefined;
    }, 60_000);
  });
});
