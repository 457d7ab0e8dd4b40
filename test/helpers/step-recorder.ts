// A StepSink that records every call in order, for asserting exact sequences of agent output.
import type { StepSink } from "../../src/engine/agent.js";

export type SinkCall =
  | ["text", string]
  | ["progress", string, string | undefined, number | undefined]
  | ["toolCallStart", string, string]
  | ["toolCallDelta", string, string]
  | ["usage", number, number];

export interface StepRecorder {
  sink: StepSink;
  calls: SinkCall[];
  /** All text deltas joined. */
  text(): string;
}

/** `onCall` runs after each call is recorded, e.g. to abort the turn at a precise point. */
export function recordSteps(onCall?: (call: SinkCall, calls: SinkCall[]) => void): StepRecorder {
  const calls: SinkCall[] = [];
  const push = (call: SinkCall): void => {
    calls.push(call);
    onCall?.(call, calls);
  };
  return {
    calls,
    text: () =>
      calls
        .filter((c): c is ["text", string] => c[0] === "text")
        .map((c) => c[1])
        .join(""),
    sink: {
      text: (delta) => push(["text", delta]),
      progress: (stage, message, fraction) => push(["progress", stage, message, fraction]),
      toolCallStart: (callId, name) => push(["toolCallStart", callId, name]),
      toolCallDelta: (callId, argsDelta) => push(["toolCallDelta", callId, argsDelta]),
      usage: (input, output) => push(["usage", input, output]),
    },
  };
}
