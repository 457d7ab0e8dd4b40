// The example agent from examples/ plugged into a real server: text turns, a server tool call, cancel.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { EchoAgent } from "../../examples/echo-agent.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient, logged, turnText } from "../helpers/ws-client.js";

const kinds = (ms: ServerMessage[]) => logged(ms).map((e) => (e.type === "tool" ? `tool:${e.phase}` : e.type));
const withoutSeq = ({ seq: _seq, ...rest }: ServerMessage & { seq: number }) => rest;

describe("a custom agent (examples/echo-agent.ts) through the real server", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { agent: new EchoAgent() });
  });
  afterAll(() => server.close());

  async function connect(): Promise<TestClient> {
    const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, await server.createSession()));
    await client.next("session");
    return client;
  }

  it("echoes the input word by word and completes the turn with its usage", async () => {
    const client = await connect();
    client.send({ type: "input", text: "hello echo world" });
    const end = await client.waitForTurnEnd();
    expect(logged(client.messages).filter((e) => e.type === "token").map((e) => (e as { text: string }).text)).toEqual(["hello ", "echo ", "world"]);
    expect(turnText(client.messages, "t1")).toBe("hello echo world");
    expect(kinds(client.messages)).toEqual(["turn_start", "token", "token", "token", "usage", "turn_end"]);
    expect(withoutSeq(logged(client.messages).at(-2) as ServerMessage & { seq: number })).toEqual({ type: "usage", turn: "t1", inputTokens: 4, outputTokens: 3, partial: false });
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "completed", reason: "stop" });
    client.close();
  });

  it("calls the server's clock tool, and answers with its result in a second step", async () => {
    const client = await connect();
    client.send({ type: "input", text: "time?" });
    await client.waitForTurnEnd();
    expect(kinds(client.messages)).toEqual(["turn_start", "tool:start", "tool:delta", "tool:delta", "tool:ready", "tool:result", "token", "usage", "turn_end"]);
    const result = client.messages.find((m) => m.type === "tool" && m.phase === "result");
    expect(result).toMatchObject({ callId: "call_t1_0", name: "clock", executor: "server", isError: false, output: { now: expect.any(String) } });
    const output = (result as { output: unknown }).output;
    expect(turnText(client.messages, "t1")).toBe(`The clock tool said: ${JSON.stringify(output)}`);
    expect(logged(client.messages).at(-1)).toMatchObject({ type: "turn_end", status: "completed", reason: "stop" });
    client.close();
  });

  it("stops between words on cancel: turn_end cancelled, partial usage, no token after it", async () => {
    const client = await connect();
    client.send({ type: "input", text: Array.from({ length: 200 }, (_, i) => `w${i}`).join(" ") });
    await client.next("token");
    client.send({ type: "cancel" });
    const end = await client.waitForTurnEnd();
    expect(withoutSeq(end)).toEqual({ type: "turn_end", turn: "t1", status: "cancelled", reason: "cancelled" });
    // A ping round trip after the turn_end proves nothing else of the turn was on its way.
    client.send({ type: "ping", id: "after" });
    await client.next("pong", (p) => p.id === "after");
    const events = logged(client.messages);
    const tokens = events.filter((e) => e.type === "token").length;
    expect(kinds(client.messages)).toEqual(["turn_start", ...Array.from({ length: tokens }, () => "token"), "usage", "turn_end"]);
    expect(events.at(-2)).toMatchObject({ type: "usage", outputTokens: tokens, partial: true });
    expect(tokens).toBeLessThan(200);
    client.close();
  });
});
