// fast-check arbitraries for client messages, valid and malformed; each malformed one carries the answer the protocol promises for it.
import fc from "fast-check";
import { CLIENT_MESSAGE_TYPES, ErrorCode, JSON_MAX_DEPTH, TOOL_OUTPUT_MAX_CHARS, TOOL_PARAMETERS_MAX_CHARS } from "@agentwire/protocol";

export type ClientType = (typeof CLIENT_MESSAGE_TYPES)[number];
type Json = Record<string, unknown>;

// ---- run settings ----

/** Fixed, so CI is repeatable; AGENTWIRE_FUZZ_SEED explores elsewhere, and a failure prints the seed to replay. */
export const DEFAULT_FUZZ_SEED = 20_261_201;

export interface FuzzSettings {
  seed: number;
  numRuns: number;
  /** Set when AGENTWIRE_FUZZ_TIME_MS asks for a time budget instead of a run count. */
  timeMs?: number;
  /** For vitest's per-test timeout: the budget plus room for setup and the final checks. */
  testTimeoutMs: number;
}

/**
 * Seed and run count: `defaultRuns` keeps a file to a few seconds; AGENTWIRE_FUZZ_RUNS or
 * AGENTWIRE_FUZZ_TIME_MS make a local run longer. `msPerRun` bounds one run, for the test timeout.
 */
export function fuzzSettings(defaultRuns: number, msPerRun: number): FuzzSettings {
  const seed = Number(process.env.AGENTWIRE_FUZZ_SEED ?? DEFAULT_FUZZ_SEED);
  const timeMs = process.env.AGENTWIRE_FUZZ_TIME_MS ? Number(process.env.AGENTWIRE_FUZZ_TIME_MS) : undefined;
  const runs = process.env.AGENTWIRE_FUZZ_RUNS ? Number(process.env.AGENTWIRE_FUZZ_RUNS) : undefined;
  if (!Number.isSafeInteger(seed)) throw new Error(`AGENTWIRE_FUZZ_SEED must be an integer, got ${process.env.AGENTWIRE_FUZZ_SEED}`);
  const numRuns = runs ?? (timeMs !== undefined ? Number.MAX_SAFE_INTEGER : defaultRuns);
  const budget = timeMs ?? numRuns * msPerRun;
  return { seed, numRuns, timeMs, testTimeoutMs: 60_000 + Math.min(budget, 24 * 3600_000) };
}

/** The options for `fc.assert` from the settings. */
export function assertOptions(settings: FuzzSettings): fc.Parameters<unknown> {
  return {
    seed: settings.seed,
    numRuns: settings.numRuns,
    ...(settings.timeMs !== undefined ? { plugins: [fc.interruptAfterTimeLimit(settings.timeMs)] } : {}),
  };
}

/**
 * Tracks a property's runs so the test can wait out one that a time budget interrupted: fast-check
 * stops waiting for it, but its requests may still be in flight.
 */
export class InFlight {
  private last: Promise<unknown> = Promise.resolve();

  track<A extends unknown[]>(predicate: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
    return (...args: A) => {
      const run = predicate(...args);
      this.last = run.catch(() => {});
      return run;
    };
  }

  idle(): Promise<void> {
    return this.last.then(() => {});
  }
}

// ---- what a malformed message must be answered with ----

export interface Expectation {
  code: ErrorCode;
  /** HTTP status of the refusal on `POST /messages`. */
  status: number;
  /** The exact `field` of the answer. With neither `field` nor `under`, the answer names no field. */
  field?: string;
  /** The answer's `field` is this path or a path below it (deep values name the first level too deep). */
  under?: string;
  /** The id a WebSocket error echoes: the message's string id of at most 128 chars, when it was a JSON object. */
  id?: string;
}

export interface Malformed {
  /** The class of damage, for failure reports. */
  kind: string;
  /** The frame or body as text (for `binary`, the bytes go as a binary WebSocket frame). */
  text: string;
  binary?: Uint8Array;
  expect: Expectation;
}

export interface FuzzLimits {
  /** AGENTWIRE_MAX_PAYLOAD_BYTES of the node under test. */
  maxPayloadBytes: number;
  /** AGENTWIRE_MAX_INPUT_CHARS of the node under test. */
  maxInputChars: number;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.InvalidJson]: 400,
  [ErrorCode.InvalidMessage]: 400,
  [ErrorCode.UnknownType]: 400,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.InputTooLarge]: 413,
  [ErrorCode.ToolCallNotFound]: 404,
  [ErrorCode.BinaryNotSupported]: 400,
};

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && KNOWN_CODES.has(code);
}

/** The id an answer echoes, by the rule in protocol/parse.ts. */
function echoedId(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const id = (value as Json).id;
  return typeof id === "string" && id.length <= 128 ? id : undefined;
}

const bytesOf = (text: string) => Buffer.byteLength(text, "utf8");

/**
 * A message as text, and its answer: `payload_too_large` once the text is above the limit (the
 * server reads nothing of it then), else what the damage itself earns.
 */
function finish(kind: string, value: unknown, text: string, limits: FuzzLimits, answer: Omit<Expectation, "status" | "id"> & { echo?: boolean }): Malformed {
  if (bytesOf(text) > limits.maxPayloadBytes) {
    return { kind, text, expect: { code: ErrorCode.PayloadTooLarge, status: 413 } };
  }
  const { echo = true, ...rest } = answer;
  const id = echo ? echoedId(value) : undefined;
  return { kind, text, expect: { ...rest, status: STATUS[rest.code] ?? 400, ...(id !== undefined ? { id } : {}) } };
}

// ---- building blocks ----

/** Own, enumerable properties only: `__proto__` and friends land as plain keys, as JSON.parse makes them. */
function put(target: Json, key: string, value: unknown): Json {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return target;
}

function copy(value: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) put(out, k, v);
  return out;
}

function without(value: Json, key: string): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) if (k !== key) put(out, k, v);
  return out;
}

/** Any UTF-16 unit (lone surrogates included) and a few characters that stress escaping and UTF-8. */
const anyUnit = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.constantFrom("\u{1F600}", "\u00e9", "\u2028", "\u0000", '"', "\\", "\ud800", "\udfff", "\ufeff") },
);
const anyString = (minLength: number, maxLength: number) => fc.string({ unit: anyUnit, minLength, maxLength });

/** Cuts at `max` UTF-16 units; a cut may leave a lone surrogate, which is still a valid string. */
const atMost = (max: number) => (s: string) => s.slice(0, max);

/** A valid client id: 1-128 UTF-16 units of anything, exactly 128 now and then. */
export const validId = fc.oneof(
  { weight: 4, arbitrary: anyString(1, 24).map(atMost(128)) },
  { weight: 1, arbitrary: fc.constantFrom("a".repeat(128), "\u{1F600}".repeat(64), "\ud800", "m1", " ", "id with spaces", "\u0000") },
);

/**
 * `count` code points of a repeated filler: cheap to make at any size, and shrinks by length. zod
 * measures string bounds in code points (an emoji is one), so a string that must break a bound
 * is sized in code points; it is as long or longer in UTF-16 units, which parse.ts's echo rule counts.
 */
function hugeString(min: number, max: number): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom("x", "ab", "\u00e9", "\u{1F600}", "\u2028", '"', "\\", "0123456789"), fc.integer({ min, max })).map(([filler, count]) => {
    const points = [...filler];
    const whole = filler.repeat(Math.floor(count / points.length));
    return whole + points.slice(0, count % points.length).join("");
  });
}

/** Code points, as zod counts a string's length. */
export const codePoints = (s: string) => [...s].length;

const smallJson = fc.jsonValue({ maxDepth: 3 });

const notString = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(smallJson, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), smallJson, { maxKeys: 3 }),
);
const notBoolean = fc.oneof(
  fc.constantFrom("true", "false", "", "yes", "1"),
  fc.integer(),
  fc.constant(null),
  fc.array(smallJson, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), smallJson, { maxKeys: 3 }),
);
/** Not a non-negative safe integer. */
const notSeq = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.integer({ min: -(2 ** 31), max: -1 }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((x) => !Number.isInteger(x)),
  fc.constantFrom(2 ** 53, 2 ** 53 + 2, 1e300, -1e-300),
  fc.array(fc.nat(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 5 }), smallJson, { maxKeys: 2 }),
);
const notArray = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.dictionary(fc.string({ maxLength: 5 }), smallJson, { maxKeys: 3 }));
const notRecord = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(smallJson, { maxLength: 3 }));

// ---- valid messages ----

const toolName = fc.stringMatching(/^[a-zA-Z0-9_-]{1,64}$/);

/** A tool declaration that passes the schema (names may still collide: that is the session's business). */
const toolDeclaration: fc.Arbitrary<Json> = fc
  .record(
    {
      name: toolName,
      description: fc.string({ maxLength: 40 }),
      parameters: fc.dictionary(fc.string({ maxLength: 8 }), smallJson, { maxKeys: 3 }),
    },
    { requiredKeys: ["name"] },
  )
  .map((t) => copy(t as Json));

/** Optional keys of a record come out absent rather than `undefined`. */
function message(type: ClientType, fields: fc.Arbitrary<Json>): fc.Arbitrary<Json> {
  return fc.tuple(fc.option(validId, { nil: undefined }), fields).map(([id, rest]) => {
    const out = put({}, "type", type);
    if (id !== undefined) put(out, "id", id);
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) put(out, k, v);
    return out;
  });
}

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** One valid message of each client type: the schema accepts every one of them. */
export const validMessages: Record<ClientType, fc.Arbitrary<Json>> = {
  input: message("input", fc.record({ text: fc.string({ minLength: 1, maxLength: 30 }).filter((t) => t.trim() !== ""), final: opt(fc.boolean()), interrupt: opt(fc.boolean()) })),
  tool_result: message("tool_result", fc.record({ callId: anyString(1, 20).map(atMost(128)), output: smallJson, isError: opt(fc.boolean()) })),
  cancel: message("cancel", fc.record({ turn: opt(anyString(1, 10).map(atMost(64))) })),
  configure: message(
    "configure",
    fc.record({ model: opt(fc.string({ minLength: 1, maxLength: 20 })), system: opt(fc.string({ maxLength: 40 })), tools: opt(fc.array(toolDeclaration, { maxLength: 3 })) }),
  ),
  resume: message("resume", fc.record({ afterSeq: fc.nat() })),
  ping: message("ping", fc.record({})),
};

export const validMessage: fc.Arbitrary<Json> = fc.oneof(...CLIENT_MESSAGE_TYPES.map((t) => validMessages[t]));

// ---- the schema, as the mutations need it ----

type FieldKind = "string" | "boolean" | "seq" | "tools" | "any";
interface FieldSpec {
  kind: FieldKind;
  required: boolean;
}
const FIELDS: Record<ClientType, Record<string, FieldSpec>> = {
  input: { text: { kind: "string", required: true }, final: { kind: "boolean", required: false }, interrupt: { kind: "boolean", required: false } },
  // `output` takes any JSON value, but it must be there.
  tool_result: { callId: { kind: "string", required: true }, output: { kind: "any", required: true }, isError: { kind: "boolean", required: false } },
  cancel: { turn: { kind: "string", required: false } },
  configure: { model: { kind: "string", required: false }, system: { kind: "string", required: false }, tools: { kind: "tools", required: false } },
  resume: { afterSeq: { kind: "seq", required: true } },
  ping: {},
};
const TOOL_KEYS = new Set(["name", "description", "parameters"]);
const keysOf = (type: ClientType) => new Set(["type", "id", ...Object.keys(FIELDS[type])]);

const wrongValue: Record<Exclude<FieldKind, "any">, fc.Arbitrary<unknown>> = { string: notString, boolean: notBoolean, seq: notSeq, tools: notArray };

/** A base message of any type, with its type. */
const base: fc.Arbitrary<{ type: ClientType; value: Json }> = fc.constantFrom(...CLIENT_MESSAGE_TYPES).chain((type) => validMessages[type].map((value) => ({ type, value })));

/** Keys no schema knows, with the ones that trip up prototype-based code. */
const strangeKey = fc.oneof(
  { weight: 3, arbitrary: anyString(0, 12) },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "", "Type", "ID", "type ", "id\u0000", "tools.0.name", "finall") },
);

/** A configure message with at least one tool, and the index of one of them. */
const withTools = fc
  .tuple(validMessages.configure, fc.array(toolDeclaration, { minLength: 1, maxLength: 3 }), fc.nat())
  .map(([value, tools, pick]) => ({ value: put(copy(value), "tools", tools), tools, index: pick % tools.length }));

const text = (value: unknown) => JSON.stringify(value);

// ---- malformed classes ----

function wrongType(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return base.chain(({ type, value }) => {
    const fields = Object.entries(FIELDS[type]).filter(([, s]) => s.kind !== "any").map(([k]) => k);
    return fc.constantFrom("id", ...fields).chain((field) => {
      const kind = field === "id" ? "string" : (FIELDS[type][field] as FieldSpec).kind;
      return wrongValue[kind as Exclude<FieldKind, "any">].map((bad) => {
        const v = put(copy(value), field, bad);
        return finish(`wrong type: ${type}.${field}`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field });
      });
    });
  });
}

function wrongTypeOfType(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return fc.tuple(base, notString).map(([{ type, value }, bad]) => {
    const v = put(copy(value), "type", bad);
    return finish(`wrong type: ${type}.type`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field: "type" });
  });
}

function missingRequired(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return base.chain(({ type, value }) => {
    const required = Object.entries(FIELDS[type]).filter(([, s]) => s.required).map(([k]) => k);
    return fc.constantFrom("type", ...required).map((field) => {
      const v = without(value, field);
      return finish(`missing: ${type}.${field}`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field });
    });
  });
}

function unknownKey(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return base.chain(({ type, value }) =>
    fc.tuple(strangeKey.filter((k) => !keysOf(type).has(k)), smallJson).map(([key, extra]) => {
      const v = put(copy(value), key, extra);
      return finish(`unknown key: ${type}`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field: key });
    }),
  );
}

function badTool(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const damage: fc.Arbitrary<{ what: string; apply: (tool: Json) => unknown; at: string | null }> = fc.oneof(
    fc.tuple(strangeKey.filter((k) => !TOOL_KEYS.has(k)), smallJson).map(([key, extra]) => ({ what: "unknown key", apply: (t: Json) => put(copy(t), key, extra), at: key })),
    notString.map((bad) => ({ what: "name type", apply: (t: Json) => put(copy(t), "name", bad), at: "name" })),
    fc
      .oneof(fc.constantFrom("", "bad name!", "a.b", "\u00e9", "a".repeat(65), "x y"), anyString(1, 70).filter((n) => !/^[a-zA-Z0-9_-]{1,64}$/.test(n)))
      .map((bad) => ({ what: "name pattern", apply: (t: Json) => put(copy(t), "name", bad), at: "name" })),
    fc.constant({ what: "no name", apply: (t: Json) => without(t, "name"), at: "name" }),
    notString.map((bad) => ({ what: "description type", apply: (t: Json) => put(copy(t), "description", bad), at: "description" })),
    fc.integer({ min: 4097, max: 6000 }).map((n) => ({ what: "description length", apply: (t: Json) => put(copy(t), "description", "d".repeat(n)), at: "description" })),
    notRecord.map((bad) => ({ what: "parameters type", apply: (t: Json) => put(copy(t), "parameters", bad), at: "parameters" })),
    fc.integer({ min: 1, max: 2000 }).map((extra) => ({
      what: "parameters size",
      apply: (t: Json) => put(copy(t), "parameters", { type: "object", description: "p".repeat(TOOL_PARAMETERS_MAX_CHARS + extra) }),
      at: "parameters",
    })),
    notRecord.filter((v) => v === null || typeof v !== "object").map((bad) => ({ what: "not an object", apply: () => bad, at: null })),
  );
  return fc.tuple(withTools, damage).map(([{ value, tools, index }, d]) => {
    const damaged = tools.map((t, i) => (i === index ? d.apply(t) : t));
    const v = put(copy(value), "tools", damaged);
    const field = d.at === null ? `tools.${index}` : `tools.${index}.${d.at}`;
    return finish(`bad tool: ${d.what}`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field });
  });
}

function tooManyTools(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return fc.tuple(validMessages.configure, fc.integer({ min: 65, max: 80 })).map(([value, n]) => {
    const v = put(copy(value), "tools", Array.from({ length: n }, (_, i) => ({ name: `t${i}` })));
    return finish("too many tools", v, text(v), limits, { code: ErrorCode.InvalidMessage, field: "tools" });
  });
}

/** Values of the right type that break a bound: empty or long ids, names and turns, big outputs. */
function outOfRange(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const cases: fc.Arbitrary<{ type: ClientType; field: string; bad: unknown }>[] = [
    fc.constantFrom(...CLIENT_MESSAGE_TYPES).chain((type) => fc.oneof(fc.constant(""), anyString(129, 300).filter((s) => codePoints(s) > 128)).map((bad) => ({ type, field: "id", bad }))),
    fc.oneof(fc.constant(""), fc.integer({ min: 129, max: 400 }).map((n) => "c".repeat(n))).map((bad) => ({ type: "tool_result" as const, field: "callId", bad })),
    fc.oneof(fc.constant(""), fc.integer({ min: 65, max: 200 }).map((n) => "t".repeat(n))).map((bad) => ({ type: "cancel" as const, field: "turn", bad })),
    fc.oneof(fc.constant(""), fc.integer({ min: 201, max: 500 }).map((n) => "m".repeat(n))).map((bad) => ({ type: "configure" as const, field: "model", bad })),
    fc.integer({ min: 100_001, max: 100_100 }).map((n) => ({ type: "configure" as const, field: "system", bad: "s".repeat(n) })),
    fc.integer({ min: 0, max: 2000 }).map((extra) => ({ type: "tool_result" as const, field: "output", bad: "o".repeat(TOOL_OUTPUT_MAX_CHARS - 1 + extra) })),
    fc.integer({ min: 0, max: 50 }).map((extra) => ({ type: "tool_result" as const, field: "output", bad: Array.from({ length: TOOL_OUTPUT_MAX_CHARS / 2 + extra }, () => 0) })),
  ];
  return fc.oneof(...cases).chain(({ type, field, bad }) =>
    validMessages[type].map((value) => {
      const v = put(copy(value), field, bad);
      return finish(`out of range: ${type}.${field}`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field });
    }),
  );
}

/** Huge strings where length matters, up to a bit past the payload limit. */
function hugeStrings(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const max = limits.maxPayloadBytes;
  const size = fc.oneof(
    { weight: 2, arbitrary: fc.integer({ min: 300, max: 4000 }) },
    { weight: 2, arbitrary: fc.integer({ min: Math.floor(max / 2), max: Math.floor(max * 1.2) }) },
    { weight: 1, arbitrary: fc.integer({ min: max - 200, max: max + 50 }) },
  );
  const slots: fc.Arbitrary<{ type: ClientType; field: string; min?: number }>[] = [
    fc.constantFrom(...CLIENT_MESSAGE_TYPES).map((type) => ({ type, field: "id" })),
    fc.constantFrom(...CLIENT_MESSAGE_TYPES).map((type) => ({ type, field: "type" })),
    fc.constantFrom(...CLIENT_MESSAGE_TYPES).map((type) => ({ type, field: "junk" })),
    fc.constant({ type: "tool_result" as const, field: "callId" }),
    fc.constant({ type: "cancel" as const, field: "turn" }),
    fc.constant({ type: "configure" as const, field: "model" }),
    fc.constant({ type: "configure" as const, field: "system", min: 100_001 }),
    fc.constant({ type: "input" as const, field: "text", min: limits.maxInputChars + 1 }),
  ];
  return fc.tuple(fc.oneof(...slots), size).chain(([slot, n]) =>
    fc.tuple(validMessages[slot.type], hugeString(Math.max(n, slot.min ?? 0), Math.max(n, slot.min ?? 0))).map(([value, huge]) => {
      const v = put(copy(value), slot.field, huge);
      const kind = `huge string: ${slot.type}.${slot.field}`;
      if (slot.field === "type") return finish(kind, v, text(v), limits, { code: ErrorCode.UnknownType, field: "type" });
      // The session refuses input above AGENTWIRE_MAX_INPUT_CHARS (final or not), after the schema took it.
      if (slot.field === "text") return finish(kind, v, text(v), limits, { code: ErrorCode.InputTooLarge, field: "text" });
      return finish(kind, v, text(v), limits, { code: ErrorCode.InvalidMessage, field: slot.field });
    }),
  );
}

/** `levels` nested containers around a scalar, as JSON text (built as text: no recursion anywhere). */
export function nestedJson(levels: number, shape: "array" | "object" | "mixed" = "array", leaf = "0"): string {
  if (shape === "array") return "[".repeat(levels) + leaf + "]".repeat(levels);
  if (shape === "object") return '{"a":'.repeat(levels) + leaf + "}".repeat(levels);
  let open = "";
  let close = "";
  for (let i = 0; i < levels; i++) {
    open += i % 2 === 0 ? "[" : '{"k":';
    close = (i % 2 === 0 ? "]" : "}") + close;
  }
  return open + leaf + close;
}

const DEEP_MARKER = "\u0001deep-value-goes-here\u0001";

/**
 * A value nested past JSON_MAX_DEPTH at one place of a message. `rootDepth` is the depth the value
 * itself sits at (the message object is depth 1), so the fewest levels that break the limit are
 * JSON_MAX_DEPTH - rootDepth + 2; runs get those, a few more, and thousands.
 */
function deepValues(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const places: fc.Arbitrary<{ type: ClientType; value: Json; put: (v: Json) => Json; under: string; rootDepth: number; echo: boolean }>[] = [
    validMessages.tool_result.map((value) => ({ type: "tool_result" as const, value, put: (v: Json) => put(v, "output", DEEP_MARKER), under: "output", rootDepth: 2, echo: true })),
    withTools.map(({ value, index }) => ({
      type: "configure" as const,
      value,
      put: (v: Json) => {
        const tools = (v.tools as Json[]).map((t, i) => (i === index ? put(copy(t), "parameters", { a: DEEP_MARKER }) : t));
        return put(v, "tools", tools);
      },
      under: `tools.${index}.parameters`,
      rootDepth: 5,
      echo: true,
    })),
    base.chain(({ type, value }) =>
      strangeKey.filter((k) => !keysOf(type).has(k)).map((key) => ({ type, value, put: (v: Json) => put(v, key, DEEP_MARKER), under: key, rootDepth: 2, echo: true })),
    ),
    base.chain(({ type, value }) =>
      fc.constantFrom("id", ...Object.keys(FIELDS[type])).map((field) => ({ type, value, put: (v: Json) => put(v, field, DEEP_MARKER), under: field, rootDepth: 2, echo: field !== "id" })),
    ),
  ];
  return fc.tuple(fc.oneof(...places), fc.constantFrom("array" as const, "object" as const, "mixed" as const), fc.nat({ max: 3 }), fc.integer({ min: 0, max: 6000 }), fc.boolean()).map(
    ([place, shape, nearby, far, nearLimit]) => {
      const fewest = JSON_MAX_DEPTH - place.rootDepth + 2;
      const levels = nearLimit ? fewest + nearby : Math.max(fewest, far);
      const v = place.put(copy(place.value));
      const deep = nestedJson(levels, shape);
      const t = text(v).replace(JSON.stringify(DEEP_MARKER), () => deep);
      // The answer's id comes from the decoded message: an id that is itself the deep value is not echoed.
      return finish(`deep (${shape}, ${levels} levels): ${place.type} ${place.under}`, place.echo ? v : without(v, "id"), t, limits, { code: ErrorCode.InvalidMessage, under: place.under });
    },
  );
}

function notAnObject(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return fc
    .oneof(
      fc.jsonValue({ maxDepth: 3 }).filter((v) => typeof v !== "object" || v === null || Array.isArray(v)).map((v) => text(v)),
      validMessage.map((v) => text([v])),
      validMessage.map((v) => text(text(v))),
      fc.integer({ min: 1, max: 5000 }).map((n) => nestedJson(n)),
      fc.constantFrom(" 42 ", "\n[]\n", "null", "true", '"{}"', "-0", "1e999"),
    )
    .map((t) => {
      // No id, no field: nothing in a non-object can be named.
      if (bytesOf(t) > limits.maxPayloadBytes) return { kind: "not an object", text: t, expect: { code: ErrorCode.PayloadTooLarge, status: 413 } };
      return { kind: "not an object", text: t, expect: { code: ErrorCode.InvalidMessage, status: 400 } };
    });
}

function parses(t: string): boolean {
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

function notJson(): fc.Arbitrary<Malformed> {
  const baseText = validMessage.map(text);
  return fc
    .oneof(
      anyString(0, 40),
      fc.tuple(baseText, fc.nat()).map(([t, k]) => t.slice(0, k % t.length)),
      fc.tuple(baseText, fc.constantFrom("}", ",", "x", "]", " true", "\u0000", "//", "{}")).map(([t, tail]) => t + tail),
      fc.tuple(fc.constantFrom("\ufeff", "/* c */", ",", "x", "'"), baseText).map(([head, t]) => head + t),
      baseText.map((t) => t.replaceAll('"', "'")),
      baseText.map((t) => `${t.slice(0, -1)},}`),
      baseText.map((t) => t.replace('"type"', "type")),
      fc.constantFrom("", " ", "\n", "{", "}", "nul", "tru", "[1,]", '{"type":}', '{"type":"resume","afterSeq":NaN}', '{"type":"ping",}', '{"type":"ping"', "{'type':'ping'}", '{"type":"ping"}{"type":"ping"}'),
    )
    .filter((t) => !parses(t))
    .map((t) => ({ kind: "not JSON", text: t, expect: { code: ErrorCode.InvalidJson, status: 400 } }));
}

function unknownType(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const known: ReadonlySet<string> = new Set(CLIENT_MESSAGE_TYPES);
  const typeName = fc
    .oneof(anyString(0, 20), fc.constantFrom("Input", "PING", " ping", "ping ", "pong", "ack", "error", "session", "turn_start", "toString", "__proto__", "constructor", "input\u0000", ""))
    .filter((t) => !known.has(t));
  return fc.tuple(base, typeName).map(([{ value }, type]) => {
    const v = put(copy(value), "type", type);
    return finish("unknown type", v, text(v), limits, { code: ErrorCode.UnknownType, field: "type" });
  });
}

/** Past the limit by 1 byte to half the limit; exactly at it, the schema answers (`pad` is unknown). */
function oversized(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const max = limits.maxPayloadBytes;
  return fc.tuple(validMessage, fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: Math.floor(max / 2) }))).map(([value, over]) => {
    const empty = text(put(copy(value), "pad", ""));
    const v = put(copy(value), "pad", "x".repeat(max + over - bytesOf(empty)));
    return finish(over === 0 ? "exactly at the payload limit" : "oversized", v, text(v), limits, { code: ErrorCode.InvalidMessage, field: "pad" });
  });
}

/** Messages the schema takes that the session refuses; none changes the session. */
function refusedBySession(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  const bare = (v: Json) => without(without(v, "model"), "system");
  return fc.oneof(
    // Nothing runs, so no call waits for a result.
    validMessages.tool_result.map((v) => finish("tool_result for no call", v, text(v), limits, { code: ErrorCode.ToolCallNotFound, field: "callId" })),
    fc.tuple(validMessages.input, fc.constantFrom("", " ", "\n\t", "\u00a0", "\u2028")).map(([value, blank]) => {
      const v = without(put(copy(value), "text", blank), "final");
      return finish("blank input", v, text(v), limits, { code: ErrorCode.InvalidMessage, field: "text" });
    }),
    fc.tuple(withTools, fc.constantFrom("calculator", "clock", "duplicate")).map(([{ value, tools, index }, clash]) => {
      const named = clash === "duplicate" ? [...tools, { name: tools[index]?.name }] : tools.map((t, i) => (i === index ? put(copy(t), "name", clash) : t));
      const names = named.map((t) => (t as Json).name);
      // The session names the first clash in order, which may be a pair the generated names made by chance.
      const first = names.findIndex((n, i) => n === "calculator" || n === "clock" || names.indexOf(n) < i);
      const v = put(bare(copy(value)), "tools", named);
      return finish(`tool name taken: ${clash}`, v, text(v), limits, { code: ErrorCode.InvalidMessage, field: `tools.${first}.name` });
    }),
  );
}

function binaryFrames(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return fc
    .oneof(
      fc.uint8Array({ maxLength: 64 }),
      validMessage.map((v) => new Uint8Array(Buffer.from(text(v)))),
      fc.integer({ min: 1, max: Math.floor(limits.maxPayloadBytes * 1.5) }).map((n) => new Uint8Array(n).fill(0x7b)),
    )
    .map((bytes) => ({ kind: "binary frame", text: "", binary: bytes, expect: { code: ErrorCode.BinaryNotSupported, status: 400 } }));
}

/** `resume` is a stream operation: POST /messages refuses even a valid one. */
function resumeWithoutStream(limits: FuzzLimits): fc.Arbitrary<Malformed> {
  return validMessages.resume.map((v) => finish("resume without a stream", v, text(v), limits, { code: ErrorCode.InvalidMessage, field: "type" }));
}

/**
 * Malformed client messages of every class, for one transport. Every one is refused with one
 * answer and changes nothing in the session: a run may send thousands into a single session.
 */
export function malformedMessage(limits: FuzzLimits, transport: "ws" | "http"): fc.Arbitrary<Malformed> {
  const classes: fc.Arbitrary<Malformed>[] = [
    wrongType(limits),
    wrongTypeOfType(limits),
    missingRequired(limits),
    unknownKey(limits),
    badTool(limits),
    tooManyTools(limits),
    outOfRange(limits),
    hugeStrings(limits),
    deepValues(limits),
    notAnObject(limits),
    notJson(),
    unknownType(limits),
    oversized(limits),
    refusedBySession(limits),
  ];
  if (transport === "ws") classes.push(binaryFrames(limits));
  else classes.push(resumeWithoutStream(limits));
  // Never above 4x the payload limit: uWS cuts the link on those unanswered (ws-frames.test.ts covers that).
  const ceiling = limits.maxPayloadBytes * 4;
  const fits = (m: Malformed) => (m.binary ? m.binary.length : bytesOf(m.text)) <= ceiling;
  // Counterexamples print as their class and the start of their text, not 100 KB of it.
  return fc.oneof(...classes).filter(fits).map((m) => Object.defineProperty(m, fc.toStringMethod, { value: () => describeMalformed(m) }));
}

/** A short description of a message for failure reports: its class and the start of its text. */
export function describeMalformed(m: Malformed): string {
  const body = m.binary ? `<${m.binary.length} binary bytes>` : m.text.length > 160 ? `${JSON.stringify(m.text.slice(0, 160))}... (${bytesOf(m.text)} bytes)` : JSON.stringify(m.text);
  return `[${m.kind}] ${body}`;
}
