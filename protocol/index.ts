// Public entry of the protocol package: schemas and types for every WebSocket message and HTTP body, codes, limits,
// the frame parser clients and servers share, and the JSON Schema builder and the SSE parser. `@agentwire/protocol/codes` and `/sse` are the zod-free parts.
export * from "./codes.js";
export * from "./http.js";
export * from "./json-schema.js";
export * from "./limits.js";
export * from "./messages.js";
export * from "./parse.js";
export * from "./sse.js";
