// Which server tools a session is offered: the demo agent's own calculator and clock, nothing for a provider unless an embedder registers tools.
import { describe, expect, it } from "vitest";
import { configFrom } from "../../src/config.js";
import { silentLogger } from "../../src/logger.js";
import { startServer } from "../../src/server.js";
import { FakeProvider, openai, stream } from "../helpers/fake-provider.js";
import { TestClient } from "../helpers/ws-client.js";

describe("server tools", () => {
  it("a provider agent is offered no server tools by default: the upstream request carries none", async () => {
    const fake = await FakeProvider.start([stream(openai.sse([openai.text("hi"), openai.finish("stop")]))]);
    const config = configFrom({ PORT: 0, HOST: "127.0.0.1", LOG_LEVEL: "silent", AGENTWIRE_AUTH: "none", AGENTWIRE_AGENT: "openai", OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEY: "k", AGENTWIRE_MODEL: "m" });
    const server = await startServer({ config, logger: silentLogger });
    const s = (await (await fetch(`http://127.0.0.1:${server.port}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
    const ws = await TestClient.connect(TestClient.sessionUrl(`ws://127.0.0.1:${server.port}`, s));
    ws.send({ type: "input", text: "what is 2 + 2" });
    expect(await ws.waitForTurnEnd()).toMatchObject({ status: "completed" });
    expect("tools" in (await fake.request(0)).body).toBe(false);
    ws.close();
    await server.close();
    await fake.close();
  });

  it("the demo agent brings its calculator: a turn calls it and speaks its result", async () => {
    const config = configFrom({ PORT: 0, HOST: "127.0.0.1", LOG_LEVEL: "silent", AGENTWIRE_DEMO_TOKENS_PER_SEC: 0, AGENTWIRE_DEMO_REPLY_WORDS: 2 });
    const server = await startServer({ config, logger: silentLogger });
    const s = (await (await fetch(`http://127.0.0.1:${server.port}/v1/sessions`, { method: "POST" })).json()) as { sessionId: string; token: string };
    const ws = await TestClient.connect(TestClient.sessionUrl(`ws://127.0.0.1:${server.port}`, s));
    ws.send({ type: "input", text: "what is 6 * 7" });
    await ws.waitForTurnEnd();
    expect(ws.messages.find((m) => m.type === "tool" && m.phase === "result")).toMatchObject({ name: "calculator", executor: "server", output: { value: 42 }, isError: false });
    ws.close();
    await server.close();
  });
});
