// Public entry of the protocol package: schemas, types, codes, and the frame parser clients and servers share.
export * from "./codes.js";
export * from "./limits.js";
export * from "./messages.js";
export * from "./parse.js";
