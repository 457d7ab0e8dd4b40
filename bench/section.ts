// The contract every benchmark section follows, so new measurements plug into `npm run bench` unchanged.
import type { Table } from "./table.js";

export interface BenchContext {
  /** Smaller sizes and shorter windows, for iterating; figures are noisier. */
  quick: boolean;
  /** Extra diagnostic runs of agentwire (CPU profile, heap breakdown) after the measured ones; costs time. */
  profile: boolean;
  /** Progress lines for the person watching; never part of the result tables. */
  log(line: string): void;
}

/** One pass/fail line of the final summary. `met: null` means the figure could not be taken. */
export interface Target {
  label: string;
  measured: string;
  met: boolean | null;
}

export interface SectionReport {
  tables: Table[];
  /** What limited the measurement and anything a reader should know before trusting the figures. */
  notes: string[];
  targets: Target[];
}

export interface BenchSection {
  /** Selects the section with `--only=<id>`. */
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<SectionReport>;
}
