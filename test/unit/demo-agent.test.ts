import { describe, expect, it } from "vitest";
import { ErrorCode, type ServerMessage } from "@agentwire/protocol";
import { DemoAgent, findExpression, isSpace, mentions, mulberry32, planDemo, tokenize } from "../../src/agents/demo.js";
import { Engine, type Session } from "../../src/engine/index.js";
import { ArithmeticError, MAX_NESTING, calculatorTool, evaluateArithmetic } from "../../src/agents/demo-tools.js";
import { FakeSink } from "../helpers/fake-sink.js";

/** The regexes the scanners replaced, kept as the reference they must agree with. */
const OLD_EXPRESSION = /\d[\d\s.]*(?:[-+*/%^][\s(]*\d[\d\s.)]*)+/;
const oldFind = (text: string) => OLD_EXPRESSION.exec(text)?.[0].trim();
const oldTokenize = (text: string) => text.match(/\s*\S+/g) ?? [];
const oldMentions = (text: string, name: string) => new RegExp(`\\b${name}\\b`).test(text);

const ONES = "1 ".repeat(16_384);
const SUM = `${"1+".repeat(16_383)}1`;
const DEEP = `1+${"(".repeat(30_000)}1${")".repeat(30_000)}`;
const argsOf = (plan: ReturnType<typeof planDemo>) => JSON.parse(plan.call.argsChunks.join("")) as Record<string, unknown>;

/** Why evaluating failed, or "ok" with the value: the reason is the stable part, the message is for people. */
function outcome(expression: string): number | string {
  try {
    return evaluateArithmetic(expression);
  } catch (err) {
    return err instanceof ArithmeticError ? err.reason : `not an ArithmeticError: ${String(err)}`;
  }
}

describe("the demo agent's expression scanner", () => {
  const table: [string, string | undefined][] = [
    ["what is 6 * 7", "6 * 7"],
    ["what is 12 * 12?", "12 * 12"],
    ["1 + 2", "1 + 2"],
    ["pi is 3.14 - 0.14, roughly", "3.14 - 0.14"],
    ["2^10 and 7 % 3", "2^10"],
    ["10 / (2 + 3) is two", "10 / (2 + 3)"],
    // The opening parenthesis before the first number was never part of the match.
    ["compute (3 + 4) * 2 please", "3 + 4) * 2"],
    ["((1+2))", "1+2))"],
    ["call 555-1234 now", "555-1234"],
    ["x 1 2 3 + 4 y", "1 2 3 + 4"],
    ["version 1.2.3 - 4", "1.2.3 - 4"],
    ["first line\n 3 *\n 4\n", "3 *\n 4"],
    ["1\u00a0+\u00a02", "1\u00a0+\u00a02"],
    ["it costs 5 - -3", undefined],
    ["room 101 on floor 3", undefined],
    ["1 +", undefined],
    ["a-1", undefined],
    ["no numbers here", undefined],
    ["", undefined],
  ];

  it("finds the expressions the regex found, on ordinary inputs", () => {
    for (const [input, expected] of table) {
      expect(findExpression(input), input).toBe(expected);
      expect(oldFind(input), input).toBe(expected);
    }
  });

  it("puts the found expression in the calculator call", () => {
    const plan = planDemo("what is 12 * 12?", 1, 12);
    expect(plan.intro).toEqual(["Let", " me", " work", " out", " 12", " *", " 12."]);
    expect(plan.call.name).toBe("calculator");
    expect(plan.call.argsChunks).toEqual(['{"expres', 'sion":"1', '2 * 12"}']);
  });

  it("agrees with the regex, with tokenize's regex and with the \\b match on thousands of random strings", () => {
    const random = mulberry32(7);
    const alphabet = "0123456789  ..+-*/%^(()ax_\n\t\u00a0\u2028";
    const names = ["a", "x1", "a-x", "-a", "a_", "_", "1"];
    const differ: string[] = [];
    let found = 0;
    for (let n = 0; n < 5000; n++) {
      const length = Math.floor(random() * 40);
      let text = "";
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      const expression = findExpression(text);
      if (expression !== undefined) found++;
      if (expression !== oldFind(text)) differ.push(`expression in ${JSON.stringify(text)}`);
      if (JSON.stringify(tokenize(text)) !== JSON.stringify(oldTokenize(text))) differ.push(`tokens of ${JSON.stringify(text)}`);
      for (const name of names) if (mentions(text, name) !== oldMentions(text, name)) differ.push(`${name} in ${JSON.stringify(text)}`);
    }
    expect(differ).toEqual([]);
    // Dense in digits and operators, nearly half the strings hold an expression: the comparison is not vacuous.
    expect(found).toBe(2257);
  });

  it("treats exactly \\s as space", () => {
    const differ: number[] = [];
    for (let c = 0; c <= 0xffff; c++) if (isSpace(c) !== /\s/.test(String.fromCharCode(c))) differ.push(c);
    expect(differ).toEqual([]);
  });

  it("matches client tool names as whole words", () => {
    expect(planDemo("please lookup this", 1, 4, ["lookup"]).call.name).toBe("lookup");
    expect(planDemo("please lookups this", 1, 4, ["lookup"]).call.name).toBe("calculator");
    expect(planDemo("use my-tool now", 1, 4, ["my-tool"]).call.name).toBe("my-tool");
    expect(planDemo("use my-tools now", 1, 4, ["my-tool"]).call.name).toBe("calculator");
  });
});

describe("the demo agent on hostile input", () => {
  it("finds no expression in 32 KB of '1 1 1 ...' and falls back to the seeded one", () => {
    expect(ONES.length).toBe(32_768);
    expect(findExpression(ONES)).toBeUndefined();
    const plan = planDemo(ONES, 1, 40);
    expect(plan.intro).toEqual(["Let", " me", " work", " out", " 80", " *", " 93."]);
    expect(argsOf(plan)).toEqual({ expression: "80 * 93" });
  });

  it("takes 32 KB of '1+1+...' whole, and the calculator sums it", async () => {
    const plan = planDemo(SUM, 1, 40);
    expect(plan.intro).toEqual(["Let", " me", " work", " out", ` ${SUM}.`]);
    expect(argsOf(plan)).toEqual({ expression: SUM });
    expect(await calculatorTool.run({ expression: SUM }, new AbortController().signal)).toEqual({ value: 16_384 });
  });

  it("answers 30,000 nested parentheses with a calculator error, not a stack overflow", async () => {
    expect(findExpression(DEEP)).toBe(DEEP);
    expect(outcome(DEEP)).toBe("too_deep");
    expect(outcome(`${"(".repeat(30_000)}1${")".repeat(30_000)}`)).toBe("too_deep");
    await expect(calculatorTool.run({ expression: DEEP }, new AbortController().signal)).rejects.toBeInstanceOf(ArithmeticError);
  });

  it("keeps the calculator's answers, and reads long runs of - and ^ without recursing", () => {
    const cases: [string, number | string][] = [
      ["6 * 7", 42],
      ["1 + 2 * 3", 7],
      ["(1 + 2) * 3", 9],
      ["10 / 4", 2.5],
      ["7 % 3", 1],
      ["1 - -1", 2],
      ["2^3^2", 512],
      ["-2^2", 4],
      ["2^-1", 0.5],
      ["--3", 3],
      ["-(-(4))", 4],
      ["1 2", 12],
      [`${"(".repeat(MAX_NESTING)}7${")".repeat(MAX_NESTING)}`, 7],
      [`${"(".repeat(MAX_NESTING + 1)}7${")".repeat(MAX_NESTING + 1)}`, "too_deep"],
      [`${"-".repeat(30_000)}1`, 1],
      [`${"-".repeat(30_001)}1`, -1],
      [`${"1^".repeat(30_000)}1`, 1],
      [`${"(1)+".repeat(10_000)}1`, 10_001],
      ["", "empty"],
      ["1 +", "syntax"],
      ["3 + 4) * 2", "syntax"],
      ["(1", "syntax"],
      ["1/0", "not_finite"],
    ];
    for (const [expression, expected] of cases) expect(outcome(expression), expression.slice(0, 40)).toBe(expected);
  });

  it("runs a whole turn on the deep input: the tool result is an error and the turn completes", async () => {
    const engine = new Engine({ agent: new DemoAgent({ tokensPerSecond: 0, replyWords: 3 }), limits: { maxInputChars: 100_000 } });
    try {
      const created = await engine.createSession();
      if (!created) throw new Error("no session");
      const sink = new FakeSink();
      const attachment = engine.attach(engine.get(created.sessionId) as Session, sink, undefined);
      attachment.receive({ type: "input", id: "m1", text: DEEP, final: true, interrupt: false });
      const ms: ServerMessage[] = await sink.until((m) => m.some((x) => x.type === "turn_end"));
      const result = ms.find((m) => m.type === "tool" && m.phase === "result");
      expect(result).toMatchObject({ name: "calculator", executor: "server", isError: true, code: ErrorCode.ToolFailed });
      expect(ms.at(-1)).toMatchObject({ type: "turn_end", turn: "t1", status: "completed", reason: "stop" });
    } finally {
      engine.close();
    }
  });
});
