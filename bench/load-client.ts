// Child-process entry of the token load generator: takes one job over IPC, answers with its figures, exits.
import { type LoadJob, runTokenLoad } from "./token-load.js";

process.once("message", (job: LoadJob) => {
  runTokenLoad(job).then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (err: unknown) => process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) }, () => process.exit(1)),
  );
});
