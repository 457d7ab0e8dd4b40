// Loads uWebSockets.js and tells whether the native binary loaded or the slow JS emulation took its place.
import { createRequire } from "node:module";
import type * as UWS from "uWebSockets.js";

const require = createRequire(import.meta.url);

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from "uWebSockets.js";

// The package prints its own notice and swaps in a ws-based emulation when the .node file fails to
// load; that emulation has none of the native exports below, which is how we tell them apart.
export const uws: typeof UWS = require("uWebSockets.js");

/** True when the native uWebSockets.js binary is in use. */
export function isNativeUws(mod: object = uws): boolean {
  const m = mod as Record<string, unknown>;
  return typeof m.getParts === "function" && typeof m.SSLApp === "function" && "SHARED_COMPRESSOR" in m;
}

export const NATIVE_UWS_WARNING =
  "uWebSockets.js is running its JavaScript fallback, not the native binary: expect several times the CPU " +
  "and memory per connection. Check that this Node ABI has a binary in node_modules/uWebSockets.js/binaries.";
