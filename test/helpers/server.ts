// Starts a real agentwire server on port 0 for a test, with overrides and an optional custom agent.
import { demoTools } from "../../src/agents/demo-tools.js";
import { type Config, configFrom } from "../../src/config.js";
import type { Agent, ToolRegistry } from "../../src/engine/index.js";
import { type Logger, silentLogger } from "../../src/logger.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { TEST_DEFAULTS } from "./test-defaults.js";

export { TEST_DEFAULTS } from "./test-defaults.js";

export interface TestServer extends RunningServer {
  base: string;
  wsBase: string;
  createSession(): Promise<{ sessionId: string; token: string }>;
}

export async function startTestServer(
  overrides: Partial<Record<keyof Config, string | number | boolean>> = {},
  extra: { agent?: Agent; tools?: ToolRegistry; logger?: Logger } = {},
): Promise<TestServer> {
  const config = configFrom({ ...TEST_DEFAULTS, ...overrides });
  // Test agents (the recording demo, the echo example) call the demo's calculator and clock, which
  // the server itself registers only for its own demo agent: tests register them as an embedder would.
  const server = await startServer({ config, logger: silentLogger, tools: demoTools(), ...extra });
  const base = `http://127.0.0.1:${server.port}`;
  return {
    ...server,
    base,
    wsBase: `ws://127.0.0.1:${server.port}`,
    async createSession() {
      const res = await fetch(`${base}/v1/sessions`, { method: "POST" });
      if (res.status !== 201) throw new Error(`create session: HTTP ${res.status}`);
      return (await res.json()) as { sessionId: string; token: string };
    },
  };
}
