import { createRequire } from "node:module";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { redactUrl } from "../../src/transports/http-util.js";
import { isNativeUws } from "../../src/transports/uws.js";

describe("configuration", () => {
  it("has working defaults with an empty environment", () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(8080);
    expect(c.AGENTWIRE_AGENT).toBe("demo");
    expect(c.AGENTWIRE_DEMO_TOKENS_PER_SEC).toBe(30);
  });

  it("names the variable and the reason for a bad value", () => {
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems.map((p) => p.variable);
      }
      throw new Error("accepted");
    };
    expect(bad({ PORT: "eighty" })).toEqual(["PORT"]);
    expect(bad({ PORT: "70000" })).toEqual(["PORT"]);
    expect(bad({ AGENTWIRE_AGENT: "gpt" })).toEqual(["AGENTWIRE_AGENT"]);
    expect(bad({ AGENTWIRE_OUTBOX_SOFT_BYTES: "8192", AGENTWIRE_OUTBOX_HARD_BYTES: "4096" })).toEqual(["AGENTWIRE_OUTBOX_HARD_BYTES"]);
    expect(bad({ AGENTWIRE_TRUSTED_PROXIES: "127.0.0.1, proxy.internal" })).toEqual(["AGENTWIRE_TRUSTED_PROXIES"]);
    expect(loadConfig({ AGENTWIRE_TRUSTED_PROXIES: " 127.0.0.1, 10.0.0.0/8,,::1 " }).AGENTWIRE_TRUSTED_PROXIES).toEqual(["127.0.0.1", "10.0.0.0/8", "::1"]);
  });
});

describe("logs", () => {
  it("never carry tokens, keys or ?token= in URLs", () => {
    const lines: string[] = [];
    const out = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger("info", out);
    logger.info({ token: "sekrit-1", session: { token: "sekrit-2" }, headers: { authorization: "Bearer sekrit-3" }, apiKey: "sk-sekrit-4" }, "x");
    logger.info({ url: redactUrl("/v1/sessions/s1/ws?afterSeq=3&token=sekrit-5") }, "y");
    const all = lines.join("");
    expect(all).not.toMatch(/sekrit/);
    expect(all).toContain("afterSeq=3&token=[redacted]");
  });
});

describe("uWebSockets.js", () => {
  it("the native binary is loaded, and the JS fallback would be detected", () => {
    expect(isNativeUws()).toBe(true);
    const require = createRequire(import.meta.url);
    const fallback = require("uWebSockets.js/dist/index.js");
    expect(typeof fallback.App).toBe("function");
    expect(isNativeUws(fallback)).toBe(false);
  });
});

describe("documentation", () => {
  it("the README's configuration table names every variable the server reads", async () => {
    const { readFileSync } = await import("node:fs");
    const { ConfigSchema } = await import("../../src/config.js");
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const missing = Object.keys(ConfigSchema.shape).filter((name) => !readme.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });
});
