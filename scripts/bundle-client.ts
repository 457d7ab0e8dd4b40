// Bundles @agentwire/client for browsers: one minified ES module, what a page (or the size budget) loads.
import { build } from "esbuild";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The browser entry, minified and gzipped, may be at most this many bytes. */
export const CLIENT_BUNDLE_BUDGET_BYTES = 12 * 1024;

// The repository root, whether this runs from scripts/ (tests) or from dist/scripts/ (the build).
const here = dirname(fileURLToPath(import.meta.url));
const root = basename(dirname(here)) === "dist" ? resolve(here, "../..") : resolve(here, "..");

/** The bundle's text; `outfile` also writes it. Nothing Node-only may be reachable from the entry. */
export async function bundleClient(outfile?: string): Promise<string> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ["client/src/index.ts"],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    outfile: outfile ?? "dist/public/agentwire-client.min.js",
    logLevel: "silent",
  });
  const text = result.outputFiles[0]?.text ?? "";
  if (outfile) {
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const target = resolve(root, outfile);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
  return text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? "dist/public/agentwire-client.min.js";
  const text = await bundleClient(out);
  const { gzipSync } = await import("node:zlib");
  process.stdout.write(`wrote ${out}: ${text.length} bytes, ${gzipSync(text).length} gzipped (budget ${CLIENT_BUNDLE_BUDGET_BYTES})\n`);
}
