// The admission queue through a real server and a real (fake) provider: capacity 2, three identities sending ten
// turns each. Every turn completes, the provider sees them in rotation order, queued positions only go down to 0,
// a cancelled queued turn never reaches the provider, and an input past the queue's bound is refused queue_full.
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { FakeProvider, gated, openai } from "../helpers/fake-provider.js";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TestClient } from "../helpers/ws-client.js";

const SECRET = "queue-test-secret-0123456789-abcdefghij";
const IDENTITIES = ["a", "b", "c"] as const;
const PER_IDENTITY = 10;
const CANCELLED = "c5";

const token = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));

type Progress = Extract<ServerMessage, { type: "progress" }>;
const positions = (ms: readonly ServerMessage[]) => ms.filter((m): m is Progress => m.type === "progress" && m.stage === "queued").map((m) => m.position as number);

describe("the admission queue, end to end", () => {
  let server: TestServer;
  let provider: FakeProvider;
  const gates = Array.from({ length: 40 }, () => gated(`data: ${JSON.stringify(openai.text("ok "))}\n\n`));
  const clients = new Map<string, TestClient>();

  beforeAll(async () => {
    provider = await FakeProvider.start(gates.map((g) => g.handler));
    server = await startTestServer({
      AGENTWIRE_AGENT: "openai",
      OPENAI_BASE_URL: `${provider.url}/v1`,
      OPENAI_API_KEY: "k",
      AGENTWIRE_MODEL: "m",
      AGENTWIRE_AUTH: "auto",
      AGENTWIRE_JWT_SECRET: SECRET,
      AGENTWIRE_MAX_CONCURRENT_TURNS: 2,
      AGENTWIRE_MAX_QUEUED_TURNS: 28,
    });
  });
  afterAll(async () => {
    for (const c of clients.values()) c.close();
    await server?.close();
    await provider?.close();
  });

  it("is fair, complete, cancellable and bounded", async () => {
    // Ten sessions per identity, each created with that identity's token, each with a WebSocket.
    const open = async (sub: string, name: string) => {
      const res = await fetch(`${server.base}/v1/sessions`, { method: "POST", headers: { authorization: `Bearer ${await token(sub)}` } });
      expect(res.status).toBe(201);
      const s = (await res.json()) as { sessionId: string; token: string };
      const client = await TestClient.connect(TestClient.sessionUrl(server.wsBase, s));
      await client.next("session");
      clients.set(name, client);
      return client;
    };
    const names = IDENTITIES.flatMap((id) => Array.from({ length: PER_IDENTITY }, (_, i) => `${id}${i + 1}`));
    for (const name of names) await open(name[0] as string, name);
    const late = await open("d", "d1");

    // a's ten first, then b's, then c's: a1 and a2 take the two slots, the other 28 wait.
    for (const name of names) {
      const client = clients.get(name) as TestClient;
      client.send({ type: "input", id: `in-${name}`, text: name });
      expect(await client.next("ack")).toMatchObject({ id: `in-${name}`, turn: "t1" });
    }
    expect([server.engine.runningTurns, server.engine.queuedTurns]).toEqual([2, 28]);
    // The queue is at its bound: the next input is refused, and nothing of it is kept.
    late.send({ type: "input", id: "in-d1", text: "d1" });
    const refused = await late.next("error");
    expect(refused).toMatchObject({ code: "queue_full", id: "in-d1", retryable: true });
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(server.engine.queuedTurns).toBe(28);

    // A queued turn cancelled: it ends at once, and its place goes.
    const cancelled = clients.get(CANCELLED) as TestClient;
    cancelled.send({ type: "cancel", id: "x" });
    const end = await cancelled.next("turn_end");
    expect([end.status, end.reason]).toEqual(["cancelled", "cancelled"]);
    expect(server.engine.queuedTurns).toBe(27);

    // The rotation: a3 b1 c1 a4 b2 c2 ... (c5 gone), then b's last two alone.
    const expected: string[] = [];
    const left = Object.fromEntries(IDENTITIES.map((id) => [id, names.filter((n) => n[0] === id && n !== CANCELLED && n !== "a1" && n !== "a2")]));
    while (IDENTITIES.some((id) => (left[id] as string[]).length > 0)) for (const id of IDENTITIES) if ((left[id] as string[]).length > 0) expected.push((left[id] as string[]).shift() as string);
    // Before any slot frees, every waiting turn has heard exactly its place in that order.
    for (const [i, name] of expected.entries()) {
      const client = clients.get(name) as TestClient;
      await client.waitUntil((ms) => positions(ms).at(-1) === i, `${name} at position ${i}`);
    }
    const heard = new Map(expected.map((name) => [name, positions((clients.get(name) as TestClient).messages).length]));

    // Release the provider's answers one at a time: each freed slot lets exactly one waiting turn through.
    const order: string[] = [];
    const requestOf = async (n: number) => {
      const request = await provider.request(n);
      const messages = request.body.messages as { role: string; content: string }[];
      return messages.filter((m) => m.role === "user").at(-1)?.content as string;
    };
    order.push(await requestOf(0), await requestOf(1));
    const total = 2 + expected.length;
    for (let n = 0; n < total; n++) {
      (gates[n] as (typeof gates)[number]).release(`data: ${JSON.stringify(openai.finish("stop"))}\n\n` + openai.sse([openai.usage(5, 2)]), "end");
      if (n + 2 < total) order.push(await requestOf(n + 2));
    }
    expect(order).toEqual(["a1", "a2", ...expected]);
    expect(provider.requests.length).toBe(total);

    for (const name of names) {
      const client = clients.get(name) as TestClient;
      const ended = await client.next("turn_end");
      expect([name, ended.status]).toEqual([name, name === CANCELLED ? "cancelled" : "completed"]);
    }
    // From the moment all waited, each queued turn heard its place only go down, and last heard 0 (next).
    for (const name of expected) {
      const all = positions((clients.get(name) as TestClient).messages);
      const after = all.slice((heard.get(name) as number) - 1);
      for (let i = 1; i < after.length; i++) expect([name, (after[i] as number) < (after[i - 1] as number)]).toEqual([name, true]);
      expect([name, all.at(-1)]).toEqual([name, 0]);
    }
    // Turns that started at once never queued; the cancelled one never reached the provider.
    expect(positions((clients.get("a1") as TestClient).messages)).toEqual([]);
    expect(provider.requests.some((r) => r.bodyText.includes(`"${CANCELLED}"`))).toBe(false);
    expect([server.engine.runningTurns, server.engine.queuedTurns]).toEqual([0, 0]);
  });
});
