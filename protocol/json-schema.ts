// Builds the JSON Schema of the wire protocol from the zod schemas, for clients in other languages.
import { z } from "zod";
import { CreateSessionResponse, ErrorResponse, MessageAccepted, SessionSnapshot, TurnView } from "./http.js";
import { ClientMessage, PROTOCOL_VERSION, ServerMessage } from "./messages.js";

export function protocolJsonSchema(): Record<string, unknown> {
  const output = { io: "output", unrepresentable: "any" } as const;
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: `agentwire protocol v${PROTOCOL_VERSION}`,
    $defs: {
      // "input" describes what a client may send (defaults optional); "output" what the server emits.
      ClientMessage: z.toJSONSchema(ClientMessage, { io: "input", unrepresentable: "any" }),
      ServerMessage: z.toJSONSchema(ServerMessage, output),
      // HTTP bodies the server answers with.
      CreateSessionResponse: z.toJSONSchema(CreateSessionResponse, output),
      SessionSnapshot: z.toJSONSchema(SessionSnapshot, output),
      MessageAccepted: z.toJSONSchema(MessageAccepted, output),
      TurnView: z.toJSONSchema(TurnView, output),
      ErrorResponse: z.toJSONSchema(ErrorResponse, output),
    },
  };
}
