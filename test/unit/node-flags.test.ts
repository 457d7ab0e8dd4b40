import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { NODE_FLAGS } from "../../src/node-flags.js";

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

describe("the Node flags agentwire runs with", () => {
  it("are passed by `npm start` and by the agentwire command's shebang", () => {
    const start = (JSON.parse(read("package.json")) as { scripts: { start: string } }).scripts.start;
    const shebang = read("src/cli.ts").split("\n")[0] as string;
    const flags = NODE_FLAGS.join(" ");
    expect(flags).toBe("--max-semi-space-size=4");
    expect(start).toContain(`node ${flags} dist/src/cli.js serve`);
    expect(shebang).toBe(`#!/usr/bin/env -S node ${flags}`);
  });
});
