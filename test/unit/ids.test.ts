import { describe, expect, it } from "vitest";
import { RandomIds } from "../../src/engine/ids.js";

describe("RandomIds", () => {
  it("gives base64url text of the right length, never the same twice, across pool refills", () => {
    const ids = new RandomIds();
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = ids.next(24);
      expect(id).toMatch(/^[A-Za-z0-9_-]{32}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(2000);
    expect(ids.next(12)).toHaveLength(16);
  });
});
