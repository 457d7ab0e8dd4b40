// How much conversation a session keeps: whole exchanges, newest first, within message and character budgets.
import type { HistoryMessage } from "./agent.js";
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
    chars += m.role === "tool" ? m.output.length : m.text.length;
    if (chars > maxHistoryChars && cut < history.length) break;
    cut--;
  }
  // Never start the kept history with tool results or replies whose question was cut away.
  while (cut < history.length && history[cut]?.role !== "user") cut++;
  if (cut > 0) history.splice(0, cut);
}
