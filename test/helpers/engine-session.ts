// An engine with one session and one attached fake client, for engine unit tests; closes them after each test.
import { afterEach } from "vitest";
import { demoTools } from "../../src/agents/demo-tools.js";
import { Engine, type EngineOptions, type Session } from "../../src/engine/index.js";
import { FakeSink } from "./fake-sink.js";

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

/** The demo's calculator and clock are registered unless `options.tools` says otherwise. */
export async function engineSession(options: EngineOptions) {
  const engine = new Engine({ tools: demoTools(), ...options });
  engines.push(engine);
  const created = await engine.createSession();
  if (!created) throw new Error("no session");
  const session = engine.get(created.sessionId) as Session;
  const sink = new FakeSink();
  const attachment = engine.attach(session, sink, undefined);
  return { engine, session, sink, attachment };
}
