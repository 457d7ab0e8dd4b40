// @agentwire/client: one typed client for browsers and Node. See README.md.
export { AgentwireClient, type ClientEvents, type ClientOptions, type ConnectionState, type ConnectionStatus, type ToolHandler } from "./client.js";
export { AgentwireError, type ClientErrorCode } from "./errors.js";
export type { TransportName, WebSocketConstructor, WebSocketLike } from "./links.js";
export { type SessionStore, type StoredSession, defaultStore, memoryStore } from "./store.js";
export { Turn, type TurnEvents, type TurnResult, type TurnUsage } from "./turn.js";
export { CloseCode, ErrorCode, shouldReconnect } from "@agentwire/protocol/codes";
