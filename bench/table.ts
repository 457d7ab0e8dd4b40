// Plain-text tables and number formatting shared by every section's report.

export interface Table {
  title: string;
  /** Header cells; the first column holds row labels and is left-aligned, the rest right-aligned. */
  columns: string[];
  /** `null` draws a rule between row groups. */
  rows: (string[] | null)[];
}

export function renderTable(table: Table): string {
  const all = [table.columns, ...table.rows.filter((r): r is string[] => r !== null)];
  const widths = table.columns.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  const line = (row: string[]) =>
    widths
      .map((w, i) => {
        const cell = row[i] ?? "";
        return i === 0 ? cell.padEnd(w) : cell.padStart(w);
      })
      .join("   ")
      .trimEnd();
  const rule = "-".repeat(widths.reduce((n, w) => n + w, 0) + 3 * (widths.length - 1));
  const body = table.rows.map((row) => (row === null ? rule : line(row)));
  return [table.title, rule, line(table.columns), rule, ...body, rule].join("\n");
}

/** Fixed decimals, with thousands separators for large values; `-` for a missing figure. */
export function num(value: number | null | undefined, decimals = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "-";
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function ratio(value: number | null | undefined, base: number | null | undefined): string {
  if (value == null || base == null || !(base > 0) || !Number.isFinite(value)) return "-";
  return `${(value / base).toFixed(2)}x`;
}

export function percent(part: number | null | undefined, whole: number | null | undefined, decimals = 0): string {
  if (part == null || whole == null || !(whole > 0)) return "-";
  return `${((part / whole) * 100).toFixed(decimals)}%`;
}

export function verdict(met: boolean | null): string {
  return met === null ? "n/a" : met ? "met" : "NOT met";
}
