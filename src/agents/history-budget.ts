// Trims provider-neutral history to a size budget before an agent renders it for its provider.
import type { HistoryMessage } from "../engine/agent.js";

export interface HistoryBudget {
  /** Approximate tokens the history may take. */
  maxTokens: number;
  /**
   * Characters per token used by the estimate. Four is the usual rule of thumb for English with
   * GPT and Claude tokenizers; lower it for code or non-Latin scripts to trim more eagerly.
   * @default 4
   */
  charsPerToken?: number;
}

/** Throws a RangeError for a budget that cannot be met by anything. */
export function validateBudget(budget: HistoryBudget): void {
  const perToken = budget.charsPerToken ?? 4;
  if (!(budget.maxTokens > 0) || !(perToken > 0)) {
    throw new RangeError(`history budget must be positive, got maxTokens ${budget.maxTokens}, charsPerToken ${perToken}`);
  }
}

/** A rough token count: characters / charsPerToken, rounded up. No tokenizer, by design: it is a budget. */
export function estimateTokens(text: string, charsPerToken = 4): number {
  return Math.ceil(text.length / charsPerToken);
}

/** Characters a message contributes to the prompt, plus a little for the role and framing. */
function messageChars(m: HistoryMessage): number {
  const framing = 8;
  switch (m.role) {
    case "user":
      return framing + m.text.length;
    case "assistant": {
      let n = framing + m.text.length;
      for (const c of m.toolCalls ?? []) n += c.id.length + c.name.length + (JSON.stringify(c.args) ?? "").length;
      return n;
    }
    case "tool":
      return framing + m.callId.length + m.name.length + m.output.length;
  }
}

/**
 * Indices where units start. A unit is a message together with what may not be separated from it:
 * an assistant message with tool calls owns the tool messages that follow it. Providers reject a
 * tool result without its call and (OpenAI, Anthropic) a call without its result.
 */
function unitStarts(history: readonly HistoryMessage[]): number[] {
  const starts: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const m = history[i];
    const prev = history[i - 1];
    const attached = m?.role === "tool" && (prev?.role === "tool" || (prev?.role === "assistant" && !!prev.toolCalls?.length));
    if (!attached) starts.push(i);
  }
  return starts;
}

/**
 * The newest messages that fit the budget, as a contiguous suffix of whole units, plus the newest
 * user message, which is always kept (alone if it is over budget by itself). The result starts
 * with a user message, as Anthropic requires. Returns the input array itself when nothing is cut.
 */
export function trimHistory(history: readonly HistoryMessage[], budget: HistoryBudget): readonly HistoryMessage[] {
  validateBudget(budget);
  const maxChars = budget.maxTokens * (budget.charsPerToken ?? 4);
  const sizes = history.map(messageChars);
  if (sizes.reduce((a, b) => a + b, 0) <= maxChars) return history;

  let pinned = -1;
  for (let i = history.length - 1; i >= 0; i--) {
    if (history[i]?.role === "user") {
      pinned = i;
      break;
    }
  }
  const starts = unitStarts(history);
  let used = pinned >= 0 ? (sizes[pinned] ?? 0) : 0;
  // Walk units newest first; stop at the first one that does not fit so the kept part is contiguous.
  let keepFrom = history.length;
  for (let u = starts.length - 1; u >= 0; u--) {
    const from = starts[u] ?? 0;
    const to = starts[u + 1] ?? history.length;
    let cost = 0;
    for (let i = from; i < to; i++) if (i !== pinned) cost += sizes[i] ?? 0;
    if (used + cost > maxChars) break;
    used += cost;
    keepFrom = from;
  }
  // Never open with an assistant turn or a stray tool result. When the pinned user message goes
  // first, assistant units may follow it; a tool result without its call may not.
  const pinnedFirst = pinned >= 0 && pinned < keepFrom;
  const badStart = (m: HistoryMessage | undefined): boolean => (pinnedFirst ? m?.role === "tool" : m?.role !== "user");
  while (keepFrom < history.length && badStart(history[keepFrom])) {
    const next = starts.find((s) => s > keepFrom);
    keepFrom = next ?? history.length;
  }
  const kept = history.slice(keepFrom);
  if (pinnedFirst) {
    const pinnedMessage = history[pinned];
    if (pinnedMessage) kept.unshift(pinnedMessage);
  }
  return kept;
}
