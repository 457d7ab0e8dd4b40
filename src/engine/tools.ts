// The registry of server-side tools a turn may call (the engine offers none of its own; the demo agent brings its calculator and clock).
import type { ToolDeclaration } from "@agentwire/protocol";
import type { ServerTool } from "./agent.js";

export class ToolRegistry {
  private readonly tools = new Map<string, ServerTool>();

  register(tool: ServerTool): this {
    this.tools.set(tool.declaration.name, tool);
    return this;
  }

  get(name: string): ServerTool | undefined {
    return this.tools.get(name);
  }

  declarations(): ToolDeclaration[] {
    return [...this.tools.values()].map((t) => t.declaration);
  }
}
