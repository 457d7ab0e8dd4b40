#!/usr/bin/env -S node --max-semi-space-size=4
// The `agentwire` command: `serve` runs the server from environment configuration.
import { parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { chat } from "./chat.js";
import { ListenError, startServer } from "./server.js";
import { newApiKey } from "./auth/api-keys.js";

const HELP = `agentwire - session server for bidirectional AI agents

Usage:
  agentwire serve                       start the server (configuration from environment variables)
  agentwire chat [--url URL] [--raw] [TEXT]
                                        create a session on a running server, send TEXT, print the reply;
                                        without TEXT, every line typed (or piped in) is a turn: Ctrl-C
                                        cancels the running turn, a second Ctrl-C exits.
                                        --raw prints every server message; URL (scheme optional) defaults
                                        to http://127.0.0.1:$PORT, PORT defaulting to 8080
  agentwire keygen NAME                 print a new API key for NAME, and the line for AGENTWIRE_API_KEYS(_FILE)
                                        that stores only its SHA-256 digest
  agentwire --help                      this text

Common settings (all are listed in the README):
  PORT=8080                     listen port (0 picks a free one)
  AGENTWIRE_AGENT=demo          demo | openai | anthropic
  AGENTWIRE_DEMO_TOKENS_PER_SEC pace of the demo agent (0 = as fast as possible)
  LOG_LEVEL=info                pino level

Without credentials configured, the server runs open only with the demo agent; a real provider needs
AGENTWIRE_API_KEYS(_FILE), AGENTWIRE_JWT_SECRET or AGENTWIRE_JWKS_FILE/URL, or AGENTWIRE_AUTH=none.
SIGHUP: read the API key file and the JWKS file again.
SIGTERM or SIGINT: stop taking new turns, let running ones finish (AGENTWIRE_SHUTDOWN_GRACE_MS),
then tell clients to reconnect elsewhere and exit. A second signal stops waiting.

Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration or usage, 3 the port is taken.
`;

async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === "chat") return runChat(argv.slice(1));
  if (command === "keygen") return keygen(argv.slice(1));
  if (command !== "serve") {
    process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
    return 2;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HELP);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`agentwire: invalid configuration: ${p.variable}: ${p.message}\n`);
      return 2;
    }
    throw err;
  }
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({ config });
  } catch (err) {
    if (err instanceof ListenError) {
      process.stderr.write(`agentwire: ${err.message}\n`);
      return 3;
    }
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`agentwire: invalid configuration: ${p.variable}: ${p.message}\n`);
      return 2;
    }
    throw err;
  }
  process.on("SIGHUP", () => server.reloadCredentials());
  // Machine-readable line for supervisors and tests that start us with PORT=0.
  process.stdout.write(`${JSON.stringify({ listening: server.port, nativeUws: server.nativeUws })}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  // A second signal during the grace period stops waiting for running turns.
  const impatient = new AbortController();
  const cut = () => impatient.abort();
  process.once("SIGINT", cut);
  process.once("SIGTERM", cut);
  await server.close({ graceMs: config.AGENTWIRE_SHUTDOWN_GRACE_MS, signal: impatient.signal });
  return 0;
}

function keygen(args: string[]): number {
  const name = args[0];
  if (!name || args.length > 1) {
    process.stderr.write("usage: agentwire keygen NAME\n");
    return 2;
  }
  try {
    const { key, line } = newApiKey(name);
    process.stdout.write(`key (give it to the backend; it is not stored anywhere): ${key}\nline for AGENTWIRE_API_KEYS or AGENTWIRE_API_KEYS_FILE: ${line}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`agentwire keygen: ${(err as Error).message}\n`);
    return 2;
  }
}

async function runChat(args: string[]): Promise<number> {
  let parsed: { values: { url?: string; raw?: boolean; help?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { url: { type: "string" }, raw: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  } catch (err) {
    process.stderr.write(`agentwire chat: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const url = values.url ?? `http://127.0.0.1:${process.env.PORT || 8080}`;
  const text = positionals.length > 0 ? positionals.join(" ") : undefined;
  return chat({ url, text, raw: values.raw ?? false, input: process.stdin, out: process.stdout, err: process.stderr, signals: process });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (code !== 0 || process.argv[2] !== undefined) setTimeout(() => process.exit(code), 200).unref();
  },
  (err) => {
    process.stderr.write(`agentwire: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
