// One rule for tests that need a system binary (redis-server, nginx, chromium): present, they run; missing,
// CI fails (CI must run every test; `.ci/run` installs them), and a local run skips them with a loud warning.

/** True when the tests may run. `missing` is why the binary cannot be used, or null when it can. */
export function requireBinaryOrSkip(tests: string, missing: string | null, install: string): boolean {
  if (missing === null) return true;
  const ci = process.env.CI;
  if (ci && ci !== "0" && ci !== "false") throw new Error(`${missing}: CI must run the ${tests}; ${install}`);
  console.warn(`\n!!! SKIPPING the ${tests}: ${missing}. ${install} to run them. !!!\n`);
  return false;
}
