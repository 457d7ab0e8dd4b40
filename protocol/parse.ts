// Parses one client frame into a typed message, or a typed protocol error naming the offending field.
import type { z } from "zod";
import { ErrorCode } from "./codes.js";
import { JSON_MAX_DEPTH, tooDeepPath } from "./limits.js";
import { CLIENT_MESSAGE_TYPES, ClientMessage } from "./messages.js";

export interface ParseFailure {
  code: ErrorCode;
  message: string;
  /** Dotted path of the offending field, when there is one. */
  field?: string;
  /** The client's message id, echoed back when it could be read. */
  id?: string;
}

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; error: ParseFailure };

const knownTypes: ReadonlySet<string> = new Set(CLIENT_MESSAGE_TYPES);

/** The dotted path a validation issue names, an unknown key included (`limits.bogus`); undefined for the whole value. */
export function fieldPath(issue: z.core.$ZodIssue): string | undefined {
  if (issue.code === "unrecognized_keys" && issue.keys.length > 0) {
    return [...issue.path, issue.keys[0]].join(".");
  }
  return issue.path.length > 0 ? issue.path.join(".") : undefined;
}

/** Validates an already-decoded JSON value as a client message. */
export function parseClientValue(value: unknown): ParseResult {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: { code: ErrorCode.InvalidMessage, message: "a message is a JSON object" } };
  }
  const record = value as Record<string, unknown>;
  const id = typeof record.id === "string" && record.id.length <= 128 ? record.id : undefined;
  const type = record.type;
  if (typeof type !== "string") {
    return { ok: false, error: { code: ErrorCode.InvalidMessage, message: "`type` is required and must be a string", field: "type", id } };
  }
  if (!knownTypes.has(type)) {
    return { ok: false, error: { code: ErrorCode.UnknownType, message: `unknown message type "${type.slice(0, 40)}"`, field: "type", id } };
  }
  // Before anything walks the value recursively (zod, JSON.stringify): a hostile depth stops here.
  const deep = tooDeepPath(value, JSON_MAX_DEPTH);
  if (deep) {
    const field = deep.join(".");
    return { ok: false, error: { code: ErrorCode.InvalidMessage, message: `${field}: nested deeper than ${JSON_MAX_DEPTH} levels`, field, id } };
  }
  const result = ClientMessage.safeParse(value);
  if (result.success) return { ok: true, message: result.data };
  const issue = result.error.issues[0];
  const field = issue ? fieldPath(issue) : undefined;
  const message = issue ? `${field ?? "message"}: ${issue.message}` : "invalid message";
  return { ok: false, error: { code: ErrorCode.InvalidMessage, message, field, id } };
}

/** Parses one text frame (or HTTP body) into a client message. */
export function parseClientFrame(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: { code: ErrorCode.InvalidJson, message: "the frame is not valid JSON" } };
  }
  return parseClientValue(value);
}
