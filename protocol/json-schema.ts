// Builds the JSON Schema of the wire protocol from the zod schemas, for clients in other languages.
import { z } from "zod";
import { ClientMessage, PROTOCOL_VERSION, ServerMessage } from "./messages.js";

export function protocolJsonSchema(): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: `agentwire protocol v${PROTOCOL_VERSION}`,
    $defs: {
      // "input" describes what a client may send (defaults optional); "output" what the server emits.
      ClientMessage: z.toJSONSchema(ClientMessage, { io: "input", unrepresentable: "any" }),
      ServerMessage: z.toJSONSchema(ServerMessage, { io: "output", unrepresentable: "any" }),
    },
  };
}
