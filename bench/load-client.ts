// Child-process entry of the token load generator: takes one job over IPC, answers with its figures, exits.
import { type SseLoadJob, runSseLoad } from "./sse-load.js";
import { type LoadJob, type LoadResult, type WindowEdge, runTokenLoad } from "./token-load.js";

process.once("message", (job: LoadJob | SseLoadJob) => {
  const onEdge = (edge: WindowEdge) => process.send?.({ edge });
  const run: Promise<LoadResult> = "transport" in job && job.transport === "sse" ? runSseLoad(job, onEdge) : runTokenLoad(job as LoadJob, onEdge);
  run.then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (err: unknown) => process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) }, () => process.exit(1)),
  );
});
