// The browser bundle of @agentwire/client that the demo page loads, read once from the build (dist/public).
import { readFileSync } from "node:fs";

const FILE = "agentwire-client.min.js";

/** The bundle's text, or null when it was not built (`npm run build` builds it). */
export function readClientBundle(): string | null {
  // dist/src/transports/ when built, src/transports/ when tests run the sources: both reach dist/public.
  for (const relative of [`../../public/${FILE}`, `../../dist/public/${FILE}`]) {
    try {
      return readFileSync(new URL(relative, import.meta.url), "utf8");
    } catch {
      // Not at this place.
    }
  }
  return null;
}
