import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, memoryStore } from "@agentwire/client";
import { planDemo } from "../../src/agents/demo.js";
import { type TestServer, startTestServer } from "../helpers/server.js";

describe("client smoke", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_TOKENS_PER_SEC: 300, AGENTWIRE_DEMO_REPLY_WORDS: 20 });
  });
  afterAll(() => server.close());

  for (const transport of ["websocket", "sse"] as const) {
    it(`runs a turn over ${transport}, survives drops`, async () => {
      const client = new AgentwireClient({ url: server.base, WebSocket: WebSocket as never, store: memoryStore(), transport, reconnect: { baseMs: 10, maxMs: 50 } });
      const states: string[] = [];
      client.on("state", (s) => states.push(s.status));
      await client.connect();
      const turn = client.send("what is 12 * 12");
      let drops = 0;
      turn.on("text", () => {
        if (turn.text.length > 10 * (drops + 1) && drops < 3) {
          drops++;
          client.dropConnection();
        }
      });
      const result = await turn.done;
      const plan = planDemo("what is 12 * 12", 1, 20);
      expect(result.text).toBe([...plan.intro, ...plan.reply(JSON.stringify({ value: 144 }), false)].join(""));
      expect(result.status).toBe("completed");
      expect(drops).toBe(3);
      console.log(transport, states.join(","));
      client.close();
    });
  }
});
