// The public API of the `agentwire` package: start the server, plug in an agent and server tools.
// Everything not exported here is internal and may change between minor versions.

// The server and its configuration.
export { startServer, ListenError, type ServerOptions, type RunningServer } from "./server.js";
export { loadConfig, configFrom, ConfigError, ConfigSchema, type Config } from "./config.js";
export type { Logger } from "./logger.js";

// Writing an agent: the interface the engine calls, what it passes, and the error it understands.
export {
  AgentError,
  type Agent,
  type HistoryMessage,
  type ServerTool,
  type StepFinish,
  type StepRequest,
  type StepResult,
  type StepSink,
  type ToolCall,
} from "./engine/agent.js";
export { ToolRegistry } from "./engine/tools.js";

// The agents that ship with the server.
export { DemoAgent, type DemoAgentOptions } from "./agents/demo.js";
export { demoTools, calculatorTool, clockTool } from "./agents/demo-tools.js";
export { OpenAIAgent, OPENAI_DEFAULT_BASE_URL, OPENAI_DEFAULT_MODEL, type OpenAIAgentOptions } from "./agents/openai.js";
export { AnthropicAgent, ANTHROPIC_DEFAULT_BASE_URL, ANTHROPIC_DEFAULT_MODEL, type AnthropicAgentOptions } from "./agents/anthropic.js";
export type { HttpUpstreamOptions, RetryInfo, RetryPolicy, UpstreamTimeouts } from "./agents/http-upstream.js";
export type { HistoryBudget } from "./agents/history-budget.js";

// The wire protocol, for code that embeds the server and speaks to it.
export { CloseCode, ERRORS, ErrorCode, PROTOCOL_VERSION, shouldReconnect } from "@agentwire/protocol";
