// The README's browser-direct flow, end to end: the example backend mints a client token, @agentwire/client creates
// a session with it and runs a turn, and the session counts against the token's subject with the plan's limits.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, memoryStore } from "@agentwire/client";
import { mintClientToken } from "../../examples/mint-client-token.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

const SECRET = "a-secret-shared-with-the-backend-0123456789";

describe("examples/mint-client-token.ts with @agentwire/client", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_AUTH: "auto", AGENTWIRE_JWT_SECRET: SECRET, AGENTWIRE_DEMO_REPLY_WORDS: 3 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("creates the session as the token's subject, with the plan's limits and prompt, and runs a turn", async () => {
    const client = new AgentwireClient({ url: server.base, WebSocket, store: memoryStore(), getToken: () => mintClientToken(SECRET, { id: "user-7", plan: "free" }) });
    try {
      await client.connect();
      const turn = client.send("what is 2 + 2");
      await turn.done;
      expect(turn.status).toBe("completed");
      const session = server.engine.get(client.sessionId as string);
      expect(session?.principal.identity).toBe("jwt:user-7");
      expect(session?.principal.system).toBe("You are the support assistant of Example Inc. Answer briefly.");
      expect(session?.principal.limits).toMatchObject({ tokens_per_day: 100_000, turns: 2 });
    } finally {
      client.close();
    }
  });

  it("a client without a token is refused 401 unauthorized, terminally", async () => {
    const client = new AgentwireClient({ url: server.base, WebSocket, store: memoryStore(), connectAttempts: 1 });
    await expect(client.connect()).rejects.toMatchObject({ code: "unauthorized" });
    client.close();
  });
});
