// What test servers run with unless a test says otherwise.

/**
 * Open mode (test agents spend nothing) and no per-identity limits, so tests of other things can create sessions
 * freely from one address; the auth and quota tests set their own.
 */
export const TEST_DEFAULTS = {
  PORT: 0,
  HOST: "127.0.0.1",
  AGENTWIRE_DEMO_TOKENS_PER_SEC: 0,
  LOG_LEVEL: "silent",
  AGENTWIRE_AUTH: "none",
  AGENTWIRE_IDENTITY_MAX_SESSIONS: 0,
  AGENTWIRE_IDENTITY_MAX_CONNECTIONS: 0,
  AGENTWIRE_IDENTITY_MAX_TURNS: 0,
  AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: 0,
} as const;
