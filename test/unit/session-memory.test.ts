// One session driven to every cap holds no more than the worst case the README states.
import { afterEach, describe, expect, it } from "vitest";
import { type Agent, Engine, type Session, type StepRequest, type StepResult, type StepSink, defaultLimits } from "../../src/engine/index.js";
import { FakeSink } from "../helpers/fake-sink.js";

/** The README's figure for one session at rest with the default limits (MiB). */
const WORST_CASE_MIB = 3;

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

/** Streams fresh 4096-character deltas: as much as a turn may hold in the turns named `huge`, 20,000 characters in the others. */
class FloodAgent implements Agent {
  readonly name = "flood";
  constructor(private readonly huge: ReadonlySet<string>) {}

  async step(request: StepRequest, sink: StepSink, signal: AbortSignal): Promise<StepResult> {
    const chars = this.huge.has(request.turnId) ? defaultLimits.maxTurnOutputChars : 20_000;
    for (let i = 0; i * 4096 <= chars && !signal.aborted; i++) sink.text(`${request.turnId}:${i}:`.padEnd(Math.min(4096, chars - i * 4096), "w"));
    return { finish: "stop", toolCalls: [] };
  }
}

function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc (vitest.config.ts passes it)");
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const big = (n: number, tag: string) => `${tag}:`.padEnd(n, "q");

async function fill(engine: Engine): Promise<Session> {
  const created = await engine.createSession();
  if (!created) throw new Error("no session");
  const session = engine.get(created.sessionId) as Session;
  const sink = new FakeSink();
  const attachment = engine.attach(session, sink, undefined);
  const { maxSystemChars, maxToolsChars, maxInputChars } = defaultLimits;
  attachment.receive({ type: "configure", system: big(maxSystemChars, session.id) });
  const description = big(4000, session.id);
  const tools = Array.from({ length: Math.floor(maxToolsChars / 4100) }, (_, i) => ({ name: `t${i}`, description, parameters: { type: "object" } }));
  attachment.receive({ type: "configure", tools });
  for (let turn = 1; turn <= 12; turn++) {
    attachment.receive({ type: "input", text: big(maxInputChars, `${session.id}-${turn}`), final: true, interrupt: false });
    await sink.until((ms) => ms.filter((m) => m.type === "turn_end").length >= turn, 20_000);
  }
  attachment.receive({ type: "input", text: big(maxInputChars, `${session.id}-pending`), final: false, interrupt: false });
  attachment.detach();
  return session;
}

describe("memory of one session at every cap", () => {
  async function perSession(huge: string[]): Promise<{ mib: number; sessions: Session[] }> {
    const engine = new Engine({ agent: new FloodAgent(new Set(huge)) });
    engines.push(engine);
    // The first session also pays for compiled code and heap growth: measure the ones after it.
    await fill(engine);
    const before = heapUsed();
    const sessions: Session[] = [];
    for (let i = 0; i < 4; i++) sessions.push(await fill(engine));
    return { mib: (heapUsed() - before) / sessions.length / 1024 / 1024, sessions };
  }

  it(`a full last turn (log and newest turn record at their caps) stays under ${WORST_CASE_MIB} MiB`, async () => {
    const { mib, sessions } = await perSession(["t12"]);
    for (const s of sessions) {
      expect(s.log.bytes).toBeGreaterThan(defaultLimits.logMaxBytes * 0.9);
      expect(s.log.bytes).toBeLessThanOrEqual(defaultLimits.logMaxBytes);
      expect(s.turn("t12")).toMatchObject({ status: "incomplete", reason: "output_limit" });
      expect(s.snapshot().pendingInput.length).toBe(defaultLimits.maxInputChars);
    }
    expect(mib).toBeLessThan(WORST_CASE_MIB);
  });

  it(`a full first turn, then many (log, history and turn records at their caps) stays under ${WORST_CASE_MIB} MiB`, async () => {
    const { mib, sessions } = await perSession(["t1"]);
    for (const s of sessions) {
      const snapshot = s.snapshot();
      const historyChars = snapshot.history.reduce((n, m) => n + ("text" in m ? m.text.length : m.output.length), 0);
      expect(historyChars).toBeGreaterThan(defaultLimits.maxHistoryChars * 0.75);
      expect(historyChars).toBeLessThanOrEqual(defaultLimits.maxHistoryChars);
      const recordChars = snapshot.turns.reduce((n, t) => n + t.input.length + t.text.length, 0);
      expect(recordChars).toBeGreaterThan(defaultLimits.maxHistoryChars * 0.75);
      expect(recordChars).toBeLessThanOrEqual(defaultLimits.maxHistoryChars);
      expect(s.log.bytes).toBeGreaterThan(defaultLimits.logMaxBytes * 0.9);
    }
    expect(mib).toBeLessThan(WORST_CASE_MIB);
  });
});
