import { describe, expect, it } from "vitest";
import { TextArena } from "../../src/engine/text-arena.js";

describe("TextArena", () => {
  it("gives back any range of what was added, sealed or not", () => {
    const arena = new TextArena();
    let all = "";
    const ends: number[] = [0];
    for (let i = 0; i < 2000; i++) {
      const piece = `<${i}>`;
      all += piece;
      expect(arena.add(piece)).toBe(all.length);
      ends.push(all.length);
    }
    for (const [from, to] of [[0, all.length], [5, 6], [ends[255] as number, ends[257] as number], [ends[1000] as number, ends[1999] as number], [3, 3]]) {
      expect(arena.slice(from as number, to as number)).toBe(all.slice(from, to));
    }
  });

  it("keeps offsets after dropping old text, and after clearing", () => {
    const arena = new TextArena();
    for (let i = 0; i < 100_000; i++) arena.add("ab");
    arena.dropBefore(150_000);
    expect(arena.slice(150_000, 150_006)).toBe("ababab");
    expect(arena.slice(199_998, 200_000)).toBe("ab");
    arena.clear();
    expect(arena.end).toBe(200_000);
    arena.add("xyz");
    expect(arena.slice(200_000, 200_003)).toBe("xyz");
  });
});
