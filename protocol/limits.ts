// Bounds on free-form JSON in client messages: nesting depth and serialized size, checked at parse time.

/** Deepest nesting a client message may have: the message object itself is depth 1. */
export const JSON_MAX_DEPTH = 32;
/** Largest `tools[].parameters` (a JSON Schema), in characters of its JSON. */
export const TOOL_PARAMETERS_MAX_CHARS = 16 * 1024;
/** Largest `tool_result.output`, in characters of its JSON. */
export const TOOL_OUTPUT_MAX_CHARS = 64 * 1024;

/**
 * The path of the first value nested deeper than `maxDepth`, or null when none is. Iterative, so a
 * hostile depth cannot exhaust the stack, and it stops at the first offender.
 */
export function tooDeepPath(value: unknown, maxDepth = JSON_MAX_DEPTH): (string | number)[] | null {
  if (typeof value !== "object" || value === null) return null;
  // Each frame: a container, its depth, its path, and the keys still to visit.
  const stack: { node: object; depth: number; path: (string | number)[] }[] = [{ node: value, depth: 1, path: [] }];
  while (stack.length > 0) {
    const { node, depth, path } = stack.pop() as { node: object; depth: number; path: (string | number)[] };
    if (depth > maxDepth) return path;
    const entries: [string | number, unknown][] = Array.isArray(node) ? node.map((v, i) => [i, v]) : Object.entries(node);
    // Reversed, so the first key is looked at first and the path reported is the first offender.
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i] as [string | number, unknown];
      if (typeof child === "object" && child !== null) stack.push({ node: child, depth: depth + 1, path: [...path, key] });
    }
  }
  return null;
}

/** Characters of `value` as JSON, or Infinity when it cannot be serialized. Call on depth-checked values only. */
export function jsonChars(value: unknown): number {
  try {
    return JSON.stringify(value ?? null).length;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
