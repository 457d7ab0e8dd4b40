// The demo agent's server-side tools: a calculator (linear, bounded nesting) and a clock.
import type { ServerTool } from "../engine/agent.js";
import { ToolRegistry } from "../engine/tools.js";

/** Parentheses nest at most this deep: each level is a few stack frames, and no real expression comes close. */
export const MAX_NESTING = 256;
/** Error messages quote this much of the expression at most, so a hostile one is not echoed back whole. */
const QUOTE_MAX = 64;

/** Why an expression has no value; a stable reason beside the message. */
export type ArithmeticFailure = "empty" | "syntax" | "too_deep" | "not_finite";

export class ArithmeticError extends Error {
  constructor(
    readonly reason: ArithmeticFailure,
    message: string,
  ) {
    super(message);
    this.name = "ArithmeticError";
  }
}

/**
 * Evaluates + - * / % ^ and parentheses over decimal numbers. No eval: a small recursive-descent parser,
 * linear in the input. Only parentheses recurse, to MAX_NESTING; runs of unary minus and chains of ^
 * are read in loops, so no input can overflow the stack.
 */
export function evaluateArithmetic(expression: string): number {
  const src = expression.replace(/\s+/g, "");
  let pos = 0;
  let depth = 0;
  const fail = (reason: ArithmeticFailure, what: string): never => {
    const quoted = expression.length > QUOTE_MAX ? `${expression.slice(0, QUOTE_MAX - 3)}...` : expression;
    throw new ArithmeticError(reason, `${what} at position ${pos} of "${quoted}"`);
  };
  const peek = () => src[pos];
  // Sticky: matches at `pos` without copying the rest of the input for every number.
  const NUMBER = /\d+(\.\d+)?/y;
  const number = (): number => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(src);
    if (!m) return fail("syntax", "expected a number");
    pos += m[0].length;
    return Number(m[0]);
  };
  const primary = (): number => {
    // Negation is its own inverse, so "---x" is -x whatever x is (NaN and -0 included).
    let negate = false;
    for (; peek() === "-"; pos++) negate = !negate;
    let v: number;
    if (peek() === "(") {
      if (++depth > MAX_NESTING) fail("too_deep", `parentheses nested deeper than ${MAX_NESTING}`);
      pos++;
      v = sum();
      if (peek() !== ")") fail("syntax", "expected )");
      pos++;
      depth--;
    } else {
      v = number();
    }
    return negate ? -v : v;
  };
  const power = (): number => {
    const base = primary();
    if (peek() !== "^") return base;
    // Right-associative, 2^3^2 = 2^9: gather the operands, then fold from the right.
    const operands = [base];
    while (peek() === "^") {
      pos++;
      operands.push(primary());
    }
    let v = operands[operands.length - 1] as number;
    for (let i = operands.length - 2; i >= 0; i--) v = (operands[i] as number) ** v;
    return v;
  };
  const product = (): number => {
    let v = power();
    for (let op = peek(); op === "*" || op === "/" || op === "%"; op = peek()) {
      pos++;
      const rhs = power();
      v = op === "*" ? v * rhs : op === "/" ? v / rhs : v % rhs;
    }
    return v;
  };
  function sum(): number {
    let v = product();
    for (let op = peek(); op === "+" || op === "-"; op = peek()) {
      pos++;
      const rhs = product();
      v = op === "+" ? v + rhs : v - rhs;
    }
    return v;
  }
  if (src.length === 0) fail("empty", "empty expression");
  const value = sum();
  if (pos !== src.length) fail("syntax", "unexpected character");
  if (!Number.isFinite(value)) fail("not_finite", "result is not finite");
  return value;
}

export const calculatorTool: ServerTool = {
  declaration: {
    name: "calculator",
    description: "Evaluates an arithmetic expression with + - * / % ^ and parentheses.",
    parameters: { type: "object", properties: { expression: { type: "string" } }, required: ["expression"] },
  },
  async run(args) {
    const expression = (args as { expression?: unknown } | null)?.expression;
    if (typeof expression !== "string") throw new Error("`expression` must be a string");
    return { value: evaluateArithmetic(expression) };
  },
};

export const clockTool: ServerTool = {
  declaration: {
    name: "clock",
    description: "Returns the server's current time as an ISO 8601 string.",
    parameters: { type: "object", properties: {} },
  },
  async run() {
    return { now: new Date().toISOString() };
  },
};

/** The tools the demo agent's script calls. */
export function demoTools(): ToolRegistry {
  return new ToolRegistry().register(calculatorTool).register(clockTool);
}
