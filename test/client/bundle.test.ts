// The browser entry of @agentwire/client within its size budget, and free of zod and of anything Node-only.
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { CLIENT_BUNDLE_BUDGET_BYTES, bundleClient } from "../../scripts/bundle-client.js";

describe("the client's browser bundle", () => {
  it(`is at most ${CLIENT_BUNDLE_BUDGET_BYTES} bytes minified and gzipped, with no zod and no node: imports`, async () => {
    const text = await bundleClient();
    const gzipped = gzipSync(text).length;
    console.log(`client bundle: ${text.length} bytes minified, ${gzipped} gzipped`);
    expect(gzipped).toBeLessThanOrEqual(CLIENT_BUNDLE_BUDGET_BYTES);
    expect(text).not.toMatch(/\bzod\b|ZodError/);
    expect(text).not.toMatch(/["']node:|require\(/);
    // The one import left is the optional `ws` peer, behind a computed name: no static import survives.
    expect(text).not.toMatch(/^import|[;}]import[ {*]/m);
  });
});
