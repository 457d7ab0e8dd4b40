// The client through real TCP drops (the proxy resets both sockets) after every k-th event, over WebSocket and over
// the SSE fallback: the application sees exactly the uninterrupted run, every seq once, every byte of text.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentwireClient, type TransportName, memoryStore } from "@agentwire/client";
import type { LoggedEvent, ServerMessage } from "@agentwire/protocol";
import { type TestServer, startTestServer } from "../helpers/server.js";
import { TcpProxy } from "../../bench/tcp-proxy.js";

const INPUT = "what is 9 * 9";
const isLogged = (m: ServerMessage): m is LoggedEvent => "seq" in m && typeof m.seq === "number";
/** The input's id is the client's own (random per client); everything else must match byte for byte. */
const withoutInputId = (e: LoggedEvent): LoggedEvent => (e.type === "turn_start" ? { type: e.type, seq: e.seq, turn: e.turn, input: e.input } : e);

export function client(base: string, transport: TransportName | "auto" = "auto") {
  return new AgentwireClient({ url: base, WebSocket, store: memoryStore(), transport, reconnect: { baseMs: 5, maxMs: 20 } });
}

/** Runs one turn; `onEvent(k)` is called as the k-th logged event reaches the application (1-based). */
async function run(base: string, transport: TransportName, onEvent: (k: number) => void = () => {}) {
  const c = client(base, transport);
  const events: LoggedEvent[] = [];
  c.on("message", (m) => {
    if (!isLogged(m)) return;
    events.push(withoutInputId(m));
    onEvent(events.length);
  });
  await c.connect();
  const result = await c.send(INPUT).done;
  c.close();
  return { events, result };
}

describe.each(["websocket", "sse"] as const)("the client over %s through drops", (transport) => {
  let server: TestServer;
  let proxy: TcpProxy;
  let reference: LoggedEvent[];
  beforeAll(async () => {
    server = await startTestServer({ AGENTWIRE_DEMO_REPLY_WORDS: 6 });
    proxy = await TcpProxy.start(server.port);
    reference = (await run(server.base, transport)).events;
  });
  afterAll(async () => {
    await proxy.close();
    await server.close();
  });

  it("a drop after every k-th event changes nothing the application sees", async () => {
    expect(reference.map((e) => e.seq)).toEqual(Array.from({ length: reference.length }, (_, i) => i + 1));
    expect(reference.at(-1)).toMatchObject({ type: "turn_end", status: "completed" });
    for (let k = 1; k < reference.length; k++) {
      let dropped = 0;
      const { events, result } = await run(proxy.base, transport, (n) => {
        if (n === k) dropped = proxy.resetAll();
      });
      expect(dropped, `connections cut after event ${k}`).toBeGreaterThan(0);
      expect(events, `drop after event ${k}`).toEqual(reference);
      expect(result.text).toBe(reference.flatMap((e) => (e.type === "token" ? [e.text] : [])).join(""));
    }
  });
});
