// Runs agentwire with the echo agent from echo-agent.ts in place of the one AGENTWIRE_AGENT selects.
// Every other setting still comes from the environment (PORT, limits, REDIS_URL...). A custom agent counts as
// one that spends money: set API keys or a token key (see "Deploying on the internet" in the README), or run it
// open with AGENTWIRE_AUTH=none, as the echo agent safely can.
import { loadConfig, startServer } from "agentwire";
import { EchoAgent } from "./echo-agent.js";

const server = await startServer({ config: loadConfig(), agent: new EchoAgent() });
console.log(`agentwire with the echo agent on port ${server.port}`);

// Ctrl-C or a stop signal: let running turns finish for up to 5 s, then close.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void server.close({ graceMs: 5_000 }).then(() => process.exit(0)));
}
