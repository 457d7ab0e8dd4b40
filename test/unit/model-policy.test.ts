// Which models a client may choose: the operator's list, any with "*", and by default only the operator's model
// when turns cost money.
import { describe, expect, it } from "vitest";
import { configFrom } from "../../src/config.js";
import { modelAllowed } from "../../src/engine/index.js";
import { modelPolicy } from "../../src/server.js";

describe("model policy", () => {
  it("a provider agent without a list keeps AGENTWIRE_MODEL only; with no model, none can be chosen", () => {
    const pinned = modelPolicy(configFrom({ AGENTWIRE_MODEL: "gpt-4.1-mini" }), false);
    expect(pinned).toEqual(["gpt-4.1-mini"]);
    expect([modelAllowed(pinned, "gpt-4.1-mini"), modelAllowed(pinned, "o1-pro"), modelAllowed(pinned, "http://127.0.0.1:6379/")]).toEqual([true, false, false]);
    expect(modelPolicy(configFrom({}), false)).toEqual([]);
  });

  it("the demo agent takes any model; a list or '*' is taken as given", () => {
    expect(modelPolicy(configFrom({}), true)).toBe("any");
    expect(modelPolicy(configFrom({ AGENTWIRE_ALLOWED_MODELS: "*" }), false)).toBe("any");
    expect(modelPolicy(configFrom({ AGENTWIRE_ALLOWED_MODELS: "m-a, m-b" }), false)).toEqual(["m-a", "m-b"]);
    expect(modelPolicy(configFrom({ AGENTWIRE_ALLOWED_MODELS: "m-a" }), true)).toEqual(["m-a"]);
  });

  it("AGENTWIRE_MODEL must be one of the list, unless the list is '*'", () => {
    expect(() => configFrom({ AGENTWIRE_MODEL: "x", AGENTWIRE_ALLOWED_MODELS: "m-a" })).toThrow(/AGENTWIRE_MODEL/);
    expect(() => configFrom({ AGENTWIRE_MODEL: "x", AGENTWIRE_ALLOWED_MODELS: "*" })).not.toThrow();
  });
});
