// Server-side tool registry, with the built-in calculator and clock tools the demo agent uses.
import type { ToolDeclaration } from "../../protocol/index.js";
import type { ServerTool } from "./agent.js";

export class ToolRegistry {
  private readonly tools = new Map<string, ServerTool>();

  register(tool: ServerTool): this {
    this.tools.set(tool.declaration.name, tool);
    return this;
  }

  get(name: string): ServerTool | undefined {
    return this.tools.get(name);
  }

  declarations(): ToolDeclaration[] {
    return [...this.tools.values()].map((t) => t.declaration);
  }
}

/** Evaluates + - * / % ^ and parentheses over decimal numbers. No eval: a small recursive-descent parser. */
export function evaluateArithmetic(expression: string): number {
  const src = expression.replace(/\s+/g, "");
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at position ${pos} of "${expression}"`);
  };
  const peek = () => src[pos];
  const number = (): number => {
    const m = /^\d+(\.\d+)?/.exec(src.slice(pos));
    if (!m) return fail("expected a number");
    pos += m[0].length;
    return Number(m[0]);
  };
  const primary = (): number => {
    if (peek() === "(") {
      pos++;
      const v = sum();
      if (peek() !== ")") fail("expected )");
      pos++;
      return v;
    }
    if (peek() === "-") {
      pos++;
      return -primary();
    }
    return number();
  };
  const power = (): number => {
    const base = primary();
    if (peek() === "^") {
      pos++;
      return base ** power();
    }
    return base;
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
  if (src.length === 0) fail("empty expression");
  const value = sum();
  if (pos !== src.length) fail("unexpected character");
  if (!Number.isFinite(value)) fail("result is not finite");
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

export function defaultTools(): ToolRegistry {
  return new ToolRegistry().register(calculatorTool).register(clockTool);
}
