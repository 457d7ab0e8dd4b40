// Shared harness of the provider end-to-end tests: a fake upstream, a real server configured for it
// (logs captured), one session and its ws client, all closed after each test.
import { Writable } from "node:stream";
import { afterEach } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { demoTools } from "../../src/agents/demo-tools.js";
import { type Config, configFrom } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { FakeProvider, type Handler } from "./fake-provider.js";
import { TestClient, logged } from "./ws-client.js";

type Env = Partial<Record<keyof Config, string | number>>;

/** Registers cleanup and returns `setup(script, env)`; `env(url, apiKey)` names the provider's settings. */
export function providerHarness(env: (upstreamUrl: string, apiKey: string) => Env, defaultKey: string) {
  let provider: FakeProvider | undefined;
  let server: RunningServer | undefined;
  let client: TestClient | undefined;
  afterEach(async () => {
    client?.close();
    await server?.close();
    await provider?.close();
    [client, server, provider] = [undefined, undefined, undefined];
  });

  return async function setup(script: Handler[], apiKey = defaultKey) {
    const fake = await FakeProvider.start(script);
    provider = fake;
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    });
    const config = configFrom({ PORT: 0, HOST: "127.0.0.1", LOG_LEVEL: "trace", AGENTWIRE_AUTH: "none", AGENTWIRE_MODEL: "m", ...env(fake.url, apiKey) });
    // The calculator and clock, registered as an embedder registers its server tools: they go upstream with every request.
    server = await startServer({ config, logger: createLogger("trace", sink), tools: demoTools() });
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/sessions`, { method: "POST" });
    const session = (await res.json()) as { sessionId: string; token: string };
    const ws = await TestClient.connect(TestClient.sessionUrl(`ws://127.0.0.1:${server.port}`, session));
    client = ws;
    await ws.next("session");
    return { fake, ws, logs, server, session };
  };
}

/** Logged events as `type` (or `tool:phase`), in order. */
export const kinds = (ms: ServerMessage[]) => logged(ms).map((e) => (e.type === "tool" ? `tool:${e.phase}` : e.type));
export const times = (n: number, kind: string): string[] => Array.from({ length: n }, () => kind);
export const withoutSeq = ({ seq: _seq, ...rest }: ServerMessage & { seq: number }) => rest;
