// The transport-agnostic engine: sessions, turns, the event log, cancel and backpressure policy.
export * from "./agent.js";
export * from "./attachment.js";
export * from "./context.js";
export * from "./empty.js";
export * from "./engine.js";
export * from "./event-log.js";
export * from "../logger.js";
export * from "./memory-guard.js";
export * from "./outbox.js";
export * from "./quota.js";
export * from "./rate.js";
export * from "./session.js";
export * from "./sink.js";
export * from "./telemetry.js";
export * from "./tools.js";
export * from "./turn.js";
export * from "./turn-queue.js";
