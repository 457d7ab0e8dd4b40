// A minimal custom agent: echoes the user's last message back, word by word, and calls a tool on request.
//
// Plug it into the server in place of the built-in agents. The engine owns the conversation and the
// tool loop: an agent only runs one model "step" at a time and streams what it produces into the sink.
import type { Agent, StepRequest, StepResult, StepSink } from "agentwire";

export class EchoAgent implements Agent {
  readonly name = "echo";

  async step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    const last = request.history[request.history.length - 1];

    // Second step of a turn: the engine ran our tool call and appended its result to the history.
    if (last?.role === "tool") {
      sink.text(`The ${last.name} tool said: ${last.output}`);
      sink.usage(0, 1);
      return { finish: "stop", toolCalls: [] };
    }

    const lastUser = [...request.history].reverse().find((m) => m.role === "user");
    const input = lastUser?.role === "user" ? lastUser.text : "";

    // Ask for a tool when the user says "time?" and the session offers a tool named "clock".
    // Stream the call like a model would (start, then argument fragments), then return it whole.
    if (input.trim() === "time?" && request.tools.some((t) => t.name === "clock")) {
      const callId = `call_${request.turnId}_${request.step}`;
      sink.toolCallStart(callId, "clock");
      sink.toolCallDelta(callId, '{"zone":');
      sink.toolCallDelta(callId, '"UTC"}');
      return { finish: "tool_calls", toolCalls: [{ id: callId, name: "clock", args: { zone: "UTC" } }] };
    }

    // Stream word by word. Check the signal between pieces: a cancelled turn must stop promptly.
    // Real agents pass `signal` to fetch so the upstream request is aborted too.
    const words = input.split(/(?<=\s)/);
    let sent = 0;
    for (const word of words) {
      if (signal.aborted) throw signal.reason;
      sink.text(word);
      sent++;
      // Usage is cumulative for the step, so a cancelled step still reports what it produced.
      sink.usage(Math.ceil(input.length / 4), sent); // about four characters per token
      await new Promise((resolve) => setTimeout(resolve, 20)); // pretend to think
    }
    return { finish: "stop", toolCalls: [] };
  }
}
