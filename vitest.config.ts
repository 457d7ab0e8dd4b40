import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run the packages from their sources; child processes and the packed-tarball test run the built files.
    alias: [
      { find: /^@agentwire\/protocol$/, replacement: here("./protocol/index.ts") },
      { find: /^@agentwire\/protocol\/codes$/, replacement: here("./protocol/codes.ts") },
      { find: /^@agentwire\/protocol\/sse$/, replacement: here("./protocol/sse.ts") },
      { find: /^@agentwire\/client$/, replacement: here("./client/src/index.ts") },
      { find: /^@agentwire\/client\/ai-sdk$/, replacement: here("./client/src/ai-sdk.ts") },
      { find: /^agentwire$/, replacement: here("./src/index.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Memory tests force a collection before they read the heap.
    execArgv: ["--expose-gc"],
    setupFiles: ["test/setup.ts"],
  },
});
