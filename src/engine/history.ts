// How much conversation a session keeps: whole exchanges, newest first, within message and character budgets.
import type { HistoryMessage } from "./agent.js";
import { jsonChars } from "@agentwire/protocol";
import type { EngineLimits } from "./context.js";

/**
 * Trims `history` in place. It is saved after every turn (so another node can take over), so it
 * must stay small; provider adapters may trim further by their own token budget.
 */
export function trimHistory(history: HistoryMessage[], limits: Pick<EngineLimits, "maxHistoryMessages" | "maxHistoryChars">): void {
  const { maxHistoryMessages, maxHistoryChars } = limits;
  let chars = 0;
  let cut = history.length;
  while (cut > 0 && history.length - cut < maxHistoryMessages) {
    const m = history[cut - 1] as HistoryMessage;
    chars += historyChars(m);
    if (chars > maxHistoryChars && cut < history.length) break;
    cut--;
  }
  // Never start the kept history with tool results or replies whose question was cut away.
  while (cut < history.length && history[cut]?.role !== "user") cut++;
  if (cut > 0) history.splice(0, cut);
}

/** What a message counts against the history budget: its text, and a call's name and arguments as sent upstream. */
export function historyChars(m: HistoryMessage): number {
  if (m.role === "tool") return m.output.length + m.name.length;
  let chars = m.text.length;
  if (m.role === "assistant" && m.toolCalls) {
    for (const call of m.toolCalls) chars += call.name.length + (typeof call.args === "string" ? call.args.length : jsonChars(call.args));
  }
  return chars;
}
