// What the scenarios share: a real server per scenario file and driver (with the driver's proxy or nginx in
// front), sessions on it, and the demo's script.
import { afterAll, beforeAll } from "vitest";
import type { SessionSnapshot } from "@agentwire/protocol";
import { planDemo } from "../../src/agents/demo.js";
import type { Session } from "../../src/engine/index.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import type { Driver, SessionTarget } from "./driver.js";

type Overrides = Parameters<typeof startTestServer>[0];
type Extra = Parameters<typeof startTestServer>[1];

/**
 * Starts a server (and whatever the driver puts in front of it) before the enclosing describe's tests, and
 * closes both after them.
 */
export function useServer(driver: Driver, overrides: Overrides = {}, extra: Extra = {}): { readonly server: TestServer; session(): Promise<SessionTarget> } {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await serveFor(driver, overrides, extra);
  });
  afterAll(() => server?.close());
  const running = () => {
    if (!server) throw new Error("the server is not running");
    return server;
  };
  return {
    get server() {
      return running();
    },
    session: () => newSession(running()),
  };
}

/** A server for one test, set up for the driver (its proxy, nginx); `close()` stops what is in front of it, then the server. */
export async function serveFor(driver: Driver, overrides: Overrides = {}, extra: Extra = {}): Promise<TestServer> {
  const server = await startTestServer(overrides, extra);
  try {
    await driver.setup?.(server);
  } catch (err) {
    await server.close();
    throw err;
  }
  return {
    ...server,
    async close(options) {
      try {
        await driver.teardown?.(server);
      } finally {
        await server.close(options);
      }
    },
  };
}

export async function newSession(server: TestServer): Promise<SessionTarget> {
  return { base: server.base, ...(await server.createSession()) };
}

/** The server's own view of the session: its log is the reference for what a link must have seen. */
export function serverSession(server: TestServer, target: SessionTarget): Session {
  const session = server.engine.get(target.sessionId);
  if (!session) throw new Error(`no session ${target.sessionId} on the server`);
  return session;
}

/** `GET /v1/sessions/:id`: the snapshot any client can read. */
export async function snapshot(target: SessionTarget): Promise<SessionSnapshot> {
  const res = await fetch(`${target.base}/v1/sessions/${target.sessionId}`, { headers: { authorization: `Bearer ${target.token}` } });
  if (res.status !== 200) throw new Error(`snapshot: HTTP ${res.status}`);
  return (await res.json()) as SessionSnapshot;
}

/** Every logged frame the server holds for the session, exactly as it sends them. */
export function logFrames(server: TestServer, target: SessionTarget): string[] {
  return serverSession(server, target).log.after(0).entries.map((e) => e.frame);
}

/** The demo's full reply text for a calculator turn. */
export function demoText(input: string, replyWords: number, output: string, seed = 1): string {
  const plan = planDemo(input, seed, replyWords);
  return [...plan.intro, ...plan.reply(output, false)].join("");
}
