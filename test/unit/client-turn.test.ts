// The client's turn handle: iteration from the first event, live or after the fact, with every byte of text in order.
import { describe, expect, it } from "vitest";
import type { LoggedEvent } from "@agentwire/protocol";
import { Turn } from "../../client/src/turn.js";

const owner = { cancel: async () => {} };
const tokens = (n: number): LoggedEvent[] => Array.from({ length: n }, (_, i) => ({ type: "token", seq: i + 2, turn: "t1", text: `w${i} ` }));
const start: LoggedEvent = { type: "turn_start", seq: 1, turn: "t1", input: "hi" };
const end = (seq: number): LoggedEvent => ({ type: "turn_end", seq, turn: "t1", status: "completed", reason: "stop" });

async function collect(turn: Turn): Promise<LoggedEvent[]> {
  const out: LoggedEvent[] = [];
  for await (const e of turn) out.push(e);
  return out;
}

describe("a turn handle", () => {
  it("keeps tokens nobody has read as one merged event (from..seq), and iteration after the end sees all the text", async () => {
    const turn = new Turn(owner, "m1");
    for (const e of [start, ...tokens(1000), end(1002)]) turn.receive(e);
    const events = await collect(turn);
    expect(events).toEqual([start, { type: "token", seq: 1001, from: 2, turn: "t1", text: tokens(1000).map((t) => (t as { text: string }).text).join("") }, end(1002)]);
    expect((await turn.done).text).toBe(tokens(1000).map((t) => (t as { text: string }).text).join(""));
  });

  it("a live iteration sees each token it was there for, in order", async () => {
    const turn = new Turn(owner, "m1");
    const seen = collect(turn);
    turn.receive(start);
    for (const e of tokens(5)) {
      turn.receive(e);
      await new Promise((resolve) => setImmediate(resolve));
    }
    turn.receive(end(7));
    expect((await seen).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});

describe("cancelling a turn the server has not named yet", () => {
  it("waits for its id and cancels that turn, never another", async () => {
    const cancelled: (string | undefined)[] = [];
    const turn = new Turn({ cancel: async (id) => void cancelled.push(id) }, "m1");
    const cancelling = turn.cancel();
    expect(cancelled).toEqual([]);
    turn.receive({ type: "turn_start", seq: 4, turn: "t2", input: "x" });
    await cancelling;
    expect(cancelled).toEqual(["t2"]);
  });
});
