// The client's view of the server's admission queue: a turn that waits is `queued` with its place, then runs; a
// queued turn cancelled from the client never runs; a quota refusal rejects with its limit.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, AgentwireError, memoryStore } from "@agentwire/client";
import { type TestServer, startTestServer } from "../helpers/server.js";

describe("@agentwire/client and the admission queue", () => {
  let server: TestServer;
  const clients: AgentwireClient[] = [];
  const client = () => {
    const c = new AgentwireClient({ url: server.base, WebSocket, store: memoryStore() });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    // One slot, and turns slow enough that a second one must wait for it.
    server = await startTestServer({ AGENTWIRE_MAX_CONCURRENT_TURNS: 1, AGENTWIRE_DEMO_TOKENS_PER_SEC: 200, AGENTWIRE_DEMO_REPLY_WORDS: 20 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.close();
  });

  it("a turn that waits is queued at position 0, then runs to the end with the whole text", async () => {
    const [a, b] = [client(), client()];
    await Promise.all([a.connect(), b.connect()]);
    const first = a.send("what is 2 + 2");
    await new Promise<void>((resolve) => first.on("text", () => resolve()));
    const second = b.send("what is 3 + 3");
    const positions: number[] = [];
    const statuses: string[] = [];
    second.on("queued", (q) => {
      positions.push(q.position);
      statuses.push(second.status);
    });
    const firstText = new Promise<string>((resolve) => second.on("text", () => resolve(second.status)));
    const [r1, r2] = await Promise.all([first.done, second.done]);
    expect([r1.status, r2.status]).toEqual(["completed", "completed"]);
    expect(positions).toEqual([0]);
    expect(statuses).toEqual(["queued"]);
    expect(await firstText).toBe("running");
    expect(second.queuePosition).toBeNull();
    expect(r2.text.length).toBeGreaterThan(0);
    expect(r2.text).toBe(second.text);
  });

  it("a queued turn cancelled by the client ends cancelled, and the one ahead of it is untouched", async () => {
    const [a, b] = [client(), client()];
    await Promise.all([a.connect(), b.connect()]);
    const first = a.send("what is 4 + 4");
    await new Promise<void>((resolve) => first.on("text", () => resolve()));
    const second = b.send("what is 5 + 5");
    await new Promise<void>((resolve) => second.on("queued", () => resolve()));
    await second.cancel();
    const r2 = await second.done;
    expect([r2.status, r2.reason, r2.text]).toEqual(["cancelled", "cancelled", ""]);
    expect((await first.done).status).toBe("completed");
    const snapshot = await b.snapshot();
    expect(snapshot.turns.map((t) => [t.id, t.status])).toEqual([["t1", "cancelled"]]);
  });
});

describe("@agentwire/client and quotas", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_IDENTITY_MAX_TURNS: 1, AGENTWIRE_DEMO_TOKENS_PER_SEC: 200, AGENTWIRE_DEMO_REPLY_WORDS: 20 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a second turn of the same identity rejects with quota_exceeded naming the limit, not retried", async () => {
    const [a, b] = [new AgentwireClient({ url: server.base, WebSocket, store: memoryStore() }), new AgentwireClient({ url: server.base, WebSocket, store: memoryStore() })];
    try {
      await Promise.all([a.connect(), b.connect()]);
      const first = a.send("what is 2 + 2");
      await new Promise<void>((resolve) => first.on("text", () => resolve()));
      const refused = await b.send("what is 3 + 3").done.catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(AgentwireError);
      expect(refused).toMatchObject({ code: "quota_exceeded", limit: "turns", retryable: true, retryAfterMs: 1000 });
      expect((await first.done).status).toBe("completed");
    } finally {
      a.close();
      b.close();
    }
  });
});
