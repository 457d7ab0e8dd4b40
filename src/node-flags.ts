// The Node flags agentwire is meant to run with: `npm start` and the `agentwire` command pass them.

/**
 * `--max-semi-space-size=4` caps V8's young generation at 2 x 4 MB. Uncapped, it grows to 2 x 16 MB
 * while thousands of sessions are created (the memory stays resident and idle servers never give
 * it back), which costs about 1.5 KB per session at 10,000 sessions. The streaming path allocates
 * little that survives, so the cap costs no CPU per token in `npm run bench`.
 */
export const NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4"];
