// Public entry of the protocol package: schemas and types for every WebSocket message and HTTP body, codes, limits,
// the frame parser clients and servers share, and the JSON Schema builder. `@agentwire/protocol/codes` is the zod-free part.
export * from "./codes.js";
export * from "./http.js";
export * from "./json-schema.js";
export * from "./limits.js";
export * from "./messages.js";
export * from "./parse.js";
