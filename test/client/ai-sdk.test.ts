// The AI SDK transport read by the real `ai` package's UI message stream reader: a server-tool turn, a client-tool
// turn answered mid-turn by the client's handler, a cancelled turn, and a reconnect that replays the running turn.
import { type UIMessage, readUIMessageStream } from "ai";
import WebSocket from "ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, type ClientOptions, memoryStore } from "@agentwire/client";
import { AgentwireChatTransport } from "@agentwire/client/ai-sdk";
import { planDemo } from "../../src/agents/demo.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

const WORDS = 6;
const clients: AgentwireClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function transport(base: string, options: Partial<ClientOptions> = {}) {
  const client = new AgentwireClient({ url: base, WebSocket, store: memoryStore(), ...options });
  clients.push(client);
  return { client, chat: new AgentwireChatTransport({ client }) };
}

const user = (text: string): UIMessage => ({ id: `u-${text}`, role: "user", parts: [{ type: "text", text }] });
const send = (chat: AgentwireChatTransport, text: string, abortSignal?: AbortSignal) =>
  chat.sendMessages({ trigger: "submit-message", chatId: "c1", messageId: undefined, messages: [user(text)], abortSignal });

/** The last message state the reader produced from a stream. */
async function lastMessage(stream: ReadableStream): Promise<UIMessage> {
  let last: UIMessage | undefined;
  for await (const message of readUIMessageStream<UIMessage>({ stream })) last = message;
  if (!last) throw new Error("the stream produced no message");
  return last;
}

const texts = (m: UIMessage) => m.parts.flatMap((p) => (p.type === "text" ? [p.text] : []));

describe("the AI SDK transport", () => {
  let server: TestServer;
  let slow: TestServer;
  beforeAll(async () => {
    [server, slow] = await Promise.all([
      startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: WORDS }),
      startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 40, AGENTWIRE_DEMO_REPLY_WORDS: 200 }),
    ]);
  });
  afterAll(async () => {
    await server.close();
    await slow.close();
  });

  it("a server-tool turn: text, the tool's input and output, the text after it, usage as metadata", async () => {
    const { chat } = transport(server.base);
    const message = await lastMessage(await send(chat, "what is 6 * 7"));
    const plan = planDemo("what is 6 * 7", 1, WORDS);
    expect(message.role).toBe("assistant");
    expect(message.parts.map((p) => p.type)).toEqual(["step-start", "text", "dynamic-tool", "text"]);
    expect(texts(message)).toEqual([plan.intro.join(""), [...plan.reply(JSON.stringify({ value: 42 }), false)].join("")]);
    expect(message.parts[2]).toMatchObject({ type: "dynamic-tool", toolName: "calculator", state: "output-available", input: { expression: "6 * 7" }, output: { value: 42 } });
    expect(message.metadata).toMatchObject({ turn: "t1", status: "completed", reason: "stop", usage: { inputTokens: expect.any(Number), outputTokens: expect.any(Number) } });
  });

  it("a client-tool turn: the client's handler answers mid-turn and the output is in the message", async () => {
    const calls: unknown[] = [];
    const { client, chat } = transport(server.base, { tools: { lookup: (args) => (calls.push(args), { found: "a tree" }) } });
    await client.connect();
    await client.configure({ tools: [{ name: "lookup", description: "finds things" }] });
    const message = await lastMessage(await send(chat, "lookup an oak"));
    expect(calls).toEqual([{ text: "lookup an oak" }]);
    expect(message.parts.find((p) => p.type === "dynamic-tool")).toMatchObject({ toolName: "lookup", state: "output-available", output: { found: "a tree" } });
    expect(message.metadata).toMatchObject({ status: "completed" });
  });

  it("a cancelled turn: aborting the request cancels the turn, and the message keeps the text so far", async () => {
    const { client, chat } = transport(slow.base);
    const abort = new AbortController();
    const stream = await send(chat, "what is 2 * 2", abort.signal);
    const seen = new Promise<void>((resolve) => client.on("message", (m) => m.type === "token" && resolve()));
    const reading = lastMessage(stream);
    await seen;
    abort.abort();
    const message = await reading;
    const plan = planDemo("what is 2 * 2", 1, 200);
    const full = [...plan.intro, ...plan.reply(JSON.stringify({ value: 4 }), false)].join("");
    expect(full.startsWith(texts(message).join(""))).toBe(true);
    expect(texts(message).join("").length).toBeGreaterThan(0);
    expect(message.metadata).toMatchObject({ status: "cancelled", reason: "cancelled" });
  });

  it("reconnectToStream replays the running turn from its start, and answers null when nothing runs", async () => {
    const { client, chat } = transport(slow.base);
    expect(await chat.reconnectToStream({ chatId: "c1" })).toBeNull();
    const first = await send(chat, "what is 3 * 3");
    await first.cancel();
    await new Promise<void>((resolve) => client.on("message", (m) => m.type === "tool" && m.phase === "result" && resolve()));
    const again = await chat.reconnectToStream({ chatId: "c1" });
    expect(again).not.toBeNull();
    const reading = lastMessage(again as ReadableStream);
    await client.cancel();
    const message = await reading;
    expect(message.parts.find((p) => p.type === "dynamic-tool")).toMatchObject({ toolName: "calculator", output: { value: 9 } });
    expect(texts(message)[0]).toBe(planDemo("what is 3 * 3", 1, 200).intro.join(""));
  });

  it("after a reload (a new client resuming after its stored seq), reconnectToStream gives the whole text of the running turn", async () => {
    const s = await slow.createSession();
    const first = transport(slow.base, { session: s });
    await first.client.connect();
    const turn = first.client.send("what is 5 * 9");
    await new Promise<void>((resolve) => turn.on("text", () => turn.text.length > 60 && resolve()));
    const reloaded = transport(slow.base, { session: { ...s, lastSeq: first.client.lastSeq } });
    const stream = await reloaded.chat.reconnectToStream({ chatId: "c1" });
    expect(stream).not.toBeNull();
    const reading = lastMessage(stream as ReadableStream);
    await new Promise<void>((resolve) => turn.on("text", () => turn.text.length > 120 && resolve()));
    await first.client.cancel();
    const [message, result] = await Promise.all([reading, turn.done]);
    expect(texts(message).join("")).toBe(result.text);
    expect(message.metadata).toMatchObject({ status: "cancelled" });
  });
});
