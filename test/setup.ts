// Fails the suite when uWebSockets.js runs its slow JS emulation instead of the native binary.
import { isNativeUws } from "../src/transports/uws.js";

if (!isNativeUws()) {
  throw new Error("uWebSockets.js native binary failed to load: the suite refuses to test the JS fallback");
}
