// History trimming: newest first, whole tool rounds, the newest user message always kept.
import { describe, expect, it } from "vitest";
import type { HistoryMessage } from "../../src/engine/agent.js";
import { estimateTokens, trimHistory } from "../../src/agents/history-budget.js";

const user = (text: string): HistoryMessage => ({ role: "user", text });
const said = (text: string): HistoryMessage => ({ role: "assistant", text });
const calls = (...ids: string[]): HistoryMessage => ({
  role: "assistant",
  text: "",
  toolCalls: ids.map((id) => ({ id, name: "t", args: {} })),
});
const result = (id: string, output = "ok"): HistoryMessage => ({ role: "tool", callId: id, name: "t", output, isError: false });

/** Budget in characters with one char per token, so sizes are easy to count: each message costs 8 + its text. */
const budget = (chars: number) => ({ maxTokens: chars, charsPerToken: 1 });

describe("trimHistory", () => {
  it("returns the same array when everything fits", () => {
    const h = [user("a"), said("b")];
    expect(trimHistory(h, budget(1000))).toBe(h);
  });

  it("keeps the newest messages that fit and starts with a user message", () => {
    const h = [user("x".repeat(50)), said("y".repeat(50)), user("q"), said("r"), user("s")];
    // Sizes: 58, 58, 9, 9, 9. A budget of 70 fits the last three but not the 58 before them.
    expect(trimHistory(h, budget(70))).toEqual([user("q"), said("r"), user("s")]);
  });

  it("never splits an assistant tool call from its results", () => {
    const h = [user("go"), calls("c1", "c2"), result("c1", "x".repeat(40)), result("c2"), said("done"), user("next")];
    // The tool round costs more than the budget left: it goes whole, and the reply after it opens with assistant, so it goes too.
    const trimmed = trimHistory(h, budget(40));
    expect(trimmed).toEqual([user("next")]);
    for (const m of trimmed) expect(m.role).not.toBe("tool");
  });

  it("keeps a whole tool round of the current turn after the pinned user message", () => {
    const h = [user("old".repeat(30)), user("now"), calls("a"), result("a", "x".repeat(100)), calls("b"), result("b")];
    const trimmed = trimHistory(h, budget(60));
    expect(trimmed).toEqual([user("now"), calls("b"), result("b")]);
  });

  it("keeps the newest user message even when it alone is over budget", () => {
    const big = user("z".repeat(500));
    expect(trimHistory([user("a"), said("b"), big], budget(10))).toEqual([big]);
  });

  it("drops stray tool results at the start", () => {
    const h = [user("a".repeat(40)), result("lost"), user("hi"), said("yo"), user("x".repeat(30))];
    // Sizes 48, 15, 10, 10, 38: the suffix from the stray result fits 80, and then loses the result.
    expect(trimHistory(h, budget(80))).toEqual([user("hi"), said("yo"), user("x".repeat(30))]);
  });

  it("rejects a budget that is not positive", () => {
    expect(() => trimHistory([user("a")], { maxTokens: 0 })).toThrow(RangeError);
  });

  it("estimates tokens as characters / 4, rounded up", () => {
    expect([estimateTokens(""), estimateTokens("abcd"), estimateTokens("abcde"), estimateTokens("abcdef", 2)]).toEqual([0, 1, 2, 3]);
  });
});
