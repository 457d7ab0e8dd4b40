// Key rotation on the real CLI: SIGHUP reads the API key file again, without a restart and without dropping a link.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { digestOf } from "../../src/auth/api-keys.js";
import { type NodeProc, startNode } from "../helpers/node-proc.js";
import { TestClient } from "../helpers/ws-client.js";

const OLD_KEY = "old-backend-key-0123456789";
const NEW_KEY = "new-backend-key-9876543210";
const line = (name: string, key: string) => `${name}=sha256:${digestOf(key).toString("hex")}\n`;

describe("agentwire serve: SIGHUP rotates the API keys", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentwire-keys-"));
  const file = join(dir, "keys.txt");
  let node: NodeProc | null = null;
  afterAll(async () => {
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const create = (key: string) => fetch(`${node?.base}/v1/sessions`, { method: "POST", headers: { authorization: `Bearer ${key}` } });

  it("the old key stops working and the new one starts, while a session made with the old one keeps its link", async () => {
    writeFileSync(file, `# the backend's key\n${line("backend", OLD_KEY)}`);
    node = await startNode("sighup", { AGENTWIRE_AUTH: "required", AGENTWIRE_API_KEYS_FILE: file });
    const made = await create(OLD_KEY);
    expect(made.status).toBe(201);
    const session = (await made.json()) as { sessionId: string; token: string };
    const client = await TestClient.connect(TestClient.sessionUrl(node.wsBase, session));
    await client.next("session");
    expect((await create(NEW_KEY)).status).toBe(401);

    // Written without a change of size or mtime the watcher could miss: SIGHUP is what makes it take effect now.
    writeFileSync(file, line("backend", NEW_KEY));
    node.child.kill("SIGHUP");
    const deadline = Date.now() + 5000;
    let status = 0;
    while ((status = (await create(NEW_KEY)).status) !== 201 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(status).toBe(201);
    const refused = await create(OLD_KEY);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    // The process is the same one, and the link made with the old key still works.
    expect(node.child.exitCode).toBeNull();
    client.send({ type: "ping", id: "still-here" });
    expect(await client.next("pong")).toMatchObject({ id: "still-here" });
    client.close();
  });
});
