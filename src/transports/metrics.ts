// The Prometheus text of /metrics: what a node holds now, and how often it refused work to protect itself.
import type { Broker } from "../broker/broker.js";
import type { Engine } from "../engine/index.js";
import type { ConnectionStats } from "./admission.js";

export interface MetricSources {
  engine: Engine;
  stats: ConnectionStats;
  /** Null when the node stands alone. */
  broker: Broker | null;
  nativeUws: boolean;
}

/** One gauge or counter: its name, type, help line and value. */
type Sample = [name: string, type: "gauge" | "counter", help: string, value: number];

export function metricsText({ engine, stats, broker, nativeUws }: MetricSources): string {
  const samples: Sample[] = [
    ["agentwire_sessions", "gauge", "Sessions held by this node.", engine.sessionCount],
    ["agentwire_running_turns", "gauge", "Turns running on this node.", engine.runningTurns],
    ["agentwire_queued_turns", "gauge", "Turns waiting in this node's admission queue.", engine.queuedTurns],
    ["agentwire_websockets", "gauge", "WebSocket links open.", stats.websockets],
    ["agentwire_sse_streams", "gauge", "SSE streams open.", stats.sseStreams],
    ["agentwire_lagging_links", "gauge", "Links behind their soft limit, watched for stalls.", engine.lagWatch.size],
    ["agentwire_memory_refusals_total", "counter", "New sessions and turns refused at the memory budget.", engine.memory.refused],
    ["agentwire_broker_ready", "gauge", "1 when the link to Redis is up, or there is no Redis.", (broker?.isReady() ?? true) ? 1 : 0],
    ["agentwire_native_uws", "gauge", "1 when the native uWebSockets.js binary is in use.", nativeUws ? 1 : 0],
  ];
  return samples.map(([name, type, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`).join("");
}
