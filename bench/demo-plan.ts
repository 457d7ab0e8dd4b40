// Section: the demo agent's planning cost on 32 KB of hostile input against 32 KB of ordinary text, in one run.
import { planDemo } from "../src/agents/demo.js";
import type { BenchContext, BenchSection, SectionReport } from "./section.js";
import { SPREAD_COLUMNS, nowMs, spread, spreadCells, type Spread } from "./stats.js";
import { ratio, type Table } from "./table.js";

/** A hostile input may cost at most this multiple of ordinary text of the same length: linear, not quadratic. */
export const HOSTILE_RATIO_TARGET = 10;

/** The default AGENTWIRE_MAX_INPUT_CHARS: the longest input a turn can bring. */
const CHARS = 32 * 1024;

interface Input {
  label: string;
  text: string;
  hostile: boolean;
}

function inputs(): Input[] {
  const question = " So what is 17 * 23?";
  const prose = "Could you read all of this first and then tell me, once you are done, how the numbers work out? ";
  const ordinary = prose.repeat(Math.ceil(CHARS / prose.length)).slice(0, CHARS - question.length) + question;
  return [
    { label: "ordinary sentences, a question at the end", text: ordinary, hostile: false },
    // Digits and spaces with no operator: each start position used to rescan the rest of the input.
    { label: 'hostile: "1 1 1 ..."', text: "1 ".repeat(CHARS / 2), hostile: true },
    { label: 'hostile: "1+1+1+..." (one long expression)', text: `${"1+".repeat(CHARS / 2 - 1)}1`, hostile: true },
  ];
}

interface Measured {
  input: Input;
  samples: Spread;
}

/** One planDemo call per sample; inputs take turns so a noisy neighbour's burst lands on all of them. */
function measure(all: Input[], rounds: number): Measured[] {
  const samples = all.map(() => [] as number[]);
  for (let round = -Math.ceil(rounds / 10); round < rounds; round++) {
    all.forEach((input, i) => {
      const started = nowMs();
      const plan = planDemo(input.text, 1, 40);
      const ms = nowMs() - started;
      // Warm-up rounds (negative) let the JIT settle; the plan is read so the call cannot be dropped.
      if (round >= 0 && plan.intro.length > 0) samples[i]?.push(ms);
    });
  }
  return all.map((input, i) => ({ input, samples: spread(samples[i] ?? []) }));
}

function table(results: Measured[]): Table {
  const base = results.find((r) => !r.input.hostile);
  return {
    title: `Demo agent planning: one planDemo call on ${CHARS.toLocaleString("en-US")} characters`,
    columns: ["input", ...SPREAD_COLUMNS, "p50 vs ordinary"],
    rows: results.map((r) => [r.input.label, ...spreadCells(r.samples), ratio(r.samples.p50, base?.samples.p50)]),
  };
}

export const demoPlan: BenchSection = {
  id: "demo-plan",
  title: "Demo agent planning",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const rounds = ctx.quick ? 100 : 500;
    ctx.log(`demo-plan: ${rounds} rounds over ${CHARS} characters of each input`);
    const results = measure(inputs(), rounds);
    const base = results.find((r) => !r.input.hostile);
    const worst = Math.max(...results.filter((r) => r.input.hostile).map((r) => r.samples.p50));
    const value = base && base.samples.p50 > 0 ? worst / base.samples.p50 : null;
    return {
      tables: [table(results)],
      notes: [
        "In-process, no server: the time is the planning alone (finding the expression, tokenizing the intro, chunking the call's arguments), which runs on the event loop at the start of every demo turn.",
        "The long expression also pays for its own intro token and 4,098 argument fragments; the ordinary text finds a short expression at its end, after scanning the whole input.",
      ],
      targets: [
        {
          label: `demo planning on hostile input <= ${HOSTILE_RATIO_TARGET}x ordinary (p50)`,
          measured: value === null ? "-" : `${value.toFixed(2)}x`,
          met: value === null || !Number.isFinite(value) ? null : value <= HOSTILE_RATIO_TARGET,
        },
      ],
    };
  },
};
