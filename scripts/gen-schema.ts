// Writes protocol/schema.json from the zod schemas; `npm run schema` after any protocol change.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { protocolJsonSchema } from "@agentwire/protocol";

const target = fileURLToPath(new URL("../../protocol/schema.json", import.meta.url));
writeFileSync(target, `${JSON.stringify(protocolJsonSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${target}\n`);
