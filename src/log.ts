// pino logger with credentials redacted: session tokens, API keys, Authorization headers, ?token= in URLs.
import { pino } from "pino";
import type { Logger } from "./logger.js";

export const REDACT_PATHS = [
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  'headers["x-api-key"]',
  'headers["sec-websocket-protocol"]',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { svc: "agentwire" }, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, destination as never);
}
