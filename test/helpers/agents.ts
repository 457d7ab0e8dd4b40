// Test agents: a demo agent that records its abort signals, and a gate agent that waits until told.
import { DemoAgent } from "../../src/agents/demo.js";
import type { Agent, StepRequest, StepResult, StepSink } from "../../src/engine/index.js";

/** The demo agent, recording every step's signal so tests can check cancel reached it. */
export class RecordingDemoAgent implements Agent {
  readonly name = "recording-demo";
  readonly signals: AbortSignal[] = [];
  readonly requests: StepRequest[] = [];
  private readonly inner: DemoAgent;

  constructor(options: ConstructorParameters<typeof DemoAgent>[0] = {}) {
    this.inner = new DemoAgent(options);
  }

  step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    this.signals.push(signal);
    this.requests.push({ ...request, history: [...request.history] });
    return this.inner.step(request, sink, signal);
  }
}

/** Emits one token, then waits until `release()` (or abort) before finishing. */
export class GateAgent implements Agent {
  readonly name = "gate";
  readonly signals: AbortSignal[] = [];
  private releases: (() => void)[] = [];

  async step(_request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    this.signals.push(signal);
    sink.text("waiting");
    await new Promise<void>((resolve, reject) => {
      this.releases.push(resolve);
      signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true });
    });
    sink.text(" done");
    sink.usage(3, 2);
    return { finish: "stop", toolCalls: [] };
  }

  release(): void {
    for (const r of this.releases.splice(0)) r();
  }
}
