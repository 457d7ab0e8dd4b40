// The embedded default agent: a deterministic, paced script with progress, a streamed tool call and usage.
import type { Agent, HistoryMessage, StepRequest, StepResult, StepSink } from "../engine/agent.js";
import { fnv1a } from "../engine/fnv.js";

export interface DemoAgentOptions {
  /** Pace of text tokens and argument fragments; 0 streams as fast as the event loop allows. @default 30 */
  tokensPerSecond?: number;
  /** Seeds the filler words, so a given seed and input always give the same reply. @default 1 */
  seed?: number;
  /** Words in the final reply, after the sentence that gives the tool's result. @default 40 */
  replyWords?: number;
}

export interface DemoCall {
  name: string;
  /** The JSON arguments, streamed in these fragments. */
  argsChunks: string[];
}

export interface DemoPlan {
  intro: string[];
  call: DemoCall;
  /** The reply tokens, given the tool's output. */
  reply(output: string, isError: boolean): DemoReply;
}

const FILLER = (
  "Tokens stream one by one while the session keeps a log of every event. A client that drops can " +
  "resume exactly where it left off, so nothing is lost and nothing is repeated, even when the network " +
  "blinks or the reader is slow. Cancel stops the work at once and still reports the usage so far."
).split(" ");
/** The filler words as tokens (leading space), made once: a long reply allocates nothing per token. */
const FILLER_TOKENS = FILLER.map((word) => ` ${word}`);

/** A reply's tokens, read by index: the head sentence, then `fillerCount` filler words from `offset`. */
export class DemoReply implements Iterable<string> {
  constructor(
    private readonly head: readonly string[],
    private readonly offset: number,
    private readonly fillerCount: number,
  ) {}

  get length(): number {
    return this.head.length + this.fillerCount;
  }

  at(i: number): string {
    const h = this.head.length;
    return i < h ? (this.head[i] as string) : (FILLER_TOKENS[(this.offset + i - h) % FILLER_TOKENS.length] as string);
  }

  *[Symbol.iterator](): Iterator<string> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }
}

/** A tool output as a person would say it: a lone field's value, else the JSON. */
function spoken(output: string): string {
  try {
    const value: unknown = JSON.parse(output);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const fields = Object.values(value);
      if (fields.length === 1) return String(fields[0]);
    }
  } catch {
    // Not JSON: say it as it is.
  }
  return output;
}

/** Splits text into word tokens that keep their leading space, as model tokenizers roughly do. */
export function tokenize(text: string): string[] {
  // What /\s*\S+/g matches, in one pass: that regex retries a trailing run of spaces from each of its characters.
  const tokens: string[] = [];
  let start = 0;
  let i = 0;
  for (;;) {
    i = skip(text, i, isSpace);
    if (i === text.length) return tokens;
    i = skip(text, i, (c) => !isSpace(c));
    tokens.push(text.slice(start, i));
    start = i;
  }
}

/** Exactly the code units `\s` matches and `trim` removes. */
export function isSpace(c: number): boolean {
  if (c === 32 || (c >= 9 && c <= 13)) return true;
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isWordChar = (c: number) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
/** - + * / % ^ */
const isOperator = (c: number) => c === 45 || c === 43 || c === 42 || c === 47 || c === 37 || c === 94;
/** [\d\s.], [\s(] and [\d\s.)]: a number, what may open an operand, what may follow its first digit. */
const isNumberChar = (c: number) => isDigit(c) || isSpace(c) || c === 46;
const isOpenChar = (c: number) => isSpace(c) || c === 40;
const isTailChar = (c: number) => isNumberChar(c) || c === 41;

/** The end of the run of characters from `i` that `accept` takes. */
function skip(text: string, i: number, accept: (c: number) => boolean): number {
  while (i < text.length && accept(text.charCodeAt(i))) i++;
  return i;
}

/** From `i`, the end of `[-+*\/%^][\s(]*\d[\d\s.)]*`, or -1 when the text there is no operator and operand. */
function operand(text: string, i: number): number {
  if (i >= text.length || !isOperator(text.charCodeAt(i))) return -1;
  const digit = skip(text, i + 1, isOpenChar);
  if (digit >= text.length || !isDigit(text.charCodeAt(digit))) return -1;
  return skip(text, digit + 1, isTailChar);
}

/**
 * The first arithmetic expression in the text, trimmed: what `/\d[\d\s.]*(?:[-+*\/%^][\s(]*\d[\d\s.)]*)+/`
 * finds, in one pass. No class holds what the step after it needs ([\d\s.] and [\d\s.)] no operator,
 * [\s(] no digit), so each run is taken whole and backtracking into it could never help. Every digit of
 * a run ends at the same place, so when no operand starts there, none of them starts a match: the scan
 * moves past the run, where the regex retried from each digit ("1 1 1 ..." was quadratic).
 */
export function findExpression(text: string): string | undefined {
  for (let i = 0; i < text.length; i++) {
    if (!isDigit(text.charCodeAt(i))) continue;
    const run = skip(text, i + 1, isNumberChar);
    let end = operand(text, run);
    if (end < 0) {
      i = run;
      continue;
    }
    for (let next = operand(text, end); next >= 0; next = operand(text, end)) end = next;
    return text.slice(i, end).trim();
  }
  return undefined;
}

/** Whether `name` occurs as a whole word, as `\bname\b` would say, without making a regex of it. */
export function mentions(text: string, name: string): boolean {
  const wordAt = (i: number) => i >= 0 && i < text.length && isWordChar(text.charCodeAt(i));
  const boundary = (i: number) => wordAt(i - 1) !== wordAt(i);
  for (let i = text.indexOf(name); i >= 0; i = i < text.length ? text.indexOf(name, i + 1) : -1) {
    if (boundary(i) && boundary(i + name.length)) return true;
  }
  return false;
}

/** A small deterministic PRNG (mulberry32): same seed, same sequence, on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function chunk(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** The exact script the demo agent follows for this input: tests compare against it. */
export function planDemo(input: string, seed: number, replyWords: number, clientToolNames: readonly string[] = []): DemoPlan {
  const random = mulberry32(seed ^ fnv1a(input));
  const clientTool = clientToolNames.find((name) => mentions(input, name));
  let call: DemoCall;
  let intro: string;
  if (clientTool) {
    intro = `I will ask your ${clientTool} tool.`;
    call = { name: clientTool, argsChunks: chunk(JSON.stringify({ text: input }), 8) };
  } else {
    const expression = findExpression(input) ?? `${2 + Math.floor(random() * 98)} * ${2 + Math.floor(random() * 98)}`;
    intro = `Let me work out ${expression}.`;
    call = { name: "calculator", argsChunks: chunk(JSON.stringify({ expression }), 8) };
  }
  // The seed picks which sentence the reply starts with; the paragraph then repeats as needed.
  const starts = FILLER.flatMap((word, i) => (/^[A-Z]/.test(word) ? [i] : []));
  const offset = starts[Math.floor(random() * starts.length)] as number;
  return {
    intro: tokenize(intro),
    call,
    reply(output, isError) {
      const head = isError ? `The ${call.name} tool failed: ${output}.` : `The ${call.name} tool says ${spoken(output)}.`;
      // Leading space: this text continues the intro of the first step.
      return new DemoReply(tokenize(` ${head}`), offset, replyWords);
    },
  };
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError");
}

export class DemoAgent implements Agent {
  readonly name = "demo";
  private readonly delayMs: number;
  private readonly seed: number;
  private readonly replyWords: number;

  constructor(options: DemoAgentOptions = {}) {
    const tps = options.tokensPerSecond ?? 30;
    this.delayMs = tps > 0 ? 1000 / tps : 0;
    this.seed = options.seed ?? 1;
    this.replyWords = options.replyWords ?? 40;
  }

  async step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    const userText = lastUserText(request.history);
    const clientTools = request.tools.map((t) => t.name).filter((n) => n !== "calculator" && n !== "clock");
    const plan = planDemo(userText, this.seed, this.replyWords, clientTools);
    const inputTokens = Math.ceil(request.history.reduce((n, m) => n + ("text" in m ? m.text.length : m.output.length), 0) / 4);
    let outputTokens = 0;
    const pace = new Pacer(this.delayMs, signal);
    const last = request.history[request.history.length - 1];
    if (last?.role !== "tool") {
      sink.progress("thinking", "reading the request", 0.1);
      for (const token of plan.intro) {
        const wait = pace.next();
        if (wait) await wait;
        sink.text(token);
        sink.usage(inputTokens, ++outputTokens);
      }
      const callId = `call_${request.turnId}_${request.step}`;
      sink.progress("tool", `calling ${plan.call.name}`, 0.4);
      sink.toolCallStart(callId, plan.call.name);
      for (const piece of plan.call.argsChunks) {
        const wait = pace.next();
        if (wait) await wait;
        sink.toolCallDelta(callId, piece);
        sink.usage(inputTokens, ++outputTokens);
      }
      return { finish: "tool_calls", toolCalls: [{ id: callId, name: plan.call.name, args: JSON.parse(plan.call.argsChunks.join("")) }] };
    }
    sink.progress("writing", "writing the answer", 0.7);
    const reply = plan.reply(last.output, last.isError);
    for (let i = 0; i < reply.length; i++) {
      const wait = pace.next();
      if (wait) await wait;
      sink.text(reply.at(i));
      sink.usage(inputTokens, ++outputTokens);
    }
    return { finish: "stop", toolCalls: [] };
  }
}

function lastUserText(history: readonly HistoryMessage[]): string {
  for (let i = history.length - 1; i >= 0; i--) {
    const m = history[i];
    if (m?.role === "user") return m.text;
  }
  return "";
}

/** Waits between emitted units; rejects the moment the signal aborts. At pace 0 it still yields now and then. */
class Pacer {
  private count = 0;

  constructor(
    private readonly delayMs: number,
    private readonly signal: AbortSignal,
  ) {}

  /** A promise to await before the next unit, or undefined when it may go out at once (no microtask per token). */
  next(): Promise<void> | undefined {
    if (this.signal.aborted) return Promise.reject(abortError(this.signal));
    if (this.delayMs === 0) {
      // Yield to I/O every few units so cancel and other sessions get a turn even at full speed.
      if (++this.count % 256 !== 0) return undefined;
      return new Promise((resolve) => setImmediate(resolve));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortError(this.signal));
      };
      const timer = setTimeout(() => {
        this.signal.removeEventListener("abort", onAbort);
        resolve();
      }, this.delayMs);
      this.signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
