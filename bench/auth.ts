// Section: what session-creation auth costs. CPU per delivered token and RSS per idle session with auth off (open
// mode) and on (a JWT per session, per-identity quotas counted), and session creations per second over HTTP with a
// JWT, an API key and no credential, all against open mode in the same run.
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { SignJWT } from "jose";
import { type Measured as CpuMeasured, type Sizes as CpuSizes, limitOf, loadRows, measure as measureCpu } from "./cpu-per-token.js";
import { profileAgentwire } from "./cpu-profile.js";
import { FIGURES, stages } from "./heap-breakdown.js";
import type { HeapProbe } from "./heap-probe.js";
import { type Measured as MemoryMeasured, WARMUP_LINKS, half, marginal, measure as measureMemory, perLink } from "./idle-memory.js";
import { type ChildServer, cpuMs, machineCpu, ticksPerSecond } from "./proc.js";
import type { BenchContext, BenchSection, SectionReport, Target } from "./section.js";
import { type ServerKind, HOST, agentwire, startAgentwire } from "./servers/index.js";
import { type CreateRequest, createSessions } from "./servers/agentwire-sessions.js";
import { num, percent, ratio, type Table } from "./table.js";

/** Auth on may cost at most this multiple of open mode per delivered token and per idle session. */
export const AUTH_RATIO_TARGET = 1.05;

/** Sessions per identity (JWT `sub`, API-key `user`): many identities, each holding a few sessions, as real users do. */
const SESSIONS_PER_IDENTITY = 4;
/** Identity limits with auth on: counted for every session, link and turn, never reached. */
const IDENTITY_LIMIT = "1000000";
/** Creates in flight at once, one keep-alive connection each. */
const CREATE_CONCURRENCY = 4;
/** One create with no answer after this long fails the run instead of hanging it. */
const CREATE_TIMEOUT_MS = 10_000;
/** Lifetime of the bench's tokens: well inside the server's default 3600 s maximum. */
const JWT_LIFETIME = "10m";

interface Sizes {
  cpu: CpuSizes;
  /** Sessions with an idle WebSocket each. */
  idleSessions: number;
  /** Interleaved off/on passes of the memory measurement; the lowest KB per session of each is reported. */
  memoryRounds: number;
  /** Timed creates per mode and round, after `createWarmup` untimed ones on the same server. */
  creates: number;
  createWarmup: number;
  /** Interleaved passes over the three create modes; the highest rate of each is reported. */
  createRounds: number;
}

const FULL: Sizes = {
  cpu: { sessions: 8, tokensPerTurn: 50_000, warmupMs: 800, measureMs: 3000, rounds: 5 },
  idleSessions: 10_000,
  memoryRounds: 2,
  creates: 2000,
  createWarmup: 500,
  createRounds: 3,
};
const QUICK: Sizes = {
  cpu: { sessions: 4, tokensPerTurn: 20_000, warmupMs: 500, measureMs: 1500, rounds: 2 },
  idleSessions: 2000,
  memoryRounds: 1,
  creates: 300,
  createWarmup: 200,
  createRounds: 1,
};

// ---------------------------------------------------------------- credentials and the two server configurations

/** Fresh for every bench run; they reach the child only through its environment, over loopback. */
const JWT_SECRET = randomBytes(32).toString("base64url");
const JWT_KEY = new TextEncoder().encode(JWT_SECRET);
const API_KEY = `awk_${randomBytes(24).toString("base64url")}`;

/** Auth on: credentials required, the token key and one API key configured, identity limits active and out of reach. */
const AUTH_ENV: Record<string, string> = {
  AGENTWIRE_AUTH: "required",
  AGENTWIRE_JWT_SECRET: JWT_SECRET,
  AGENTWIRE_API_KEYS: `bench=${API_KEY}`,
  AGENTWIRE_IDENTITY_MAX_SESSIONS: IDENTITY_LIMIT,
  AGENTWIRE_IDENTITY_MAX_CONNECTIONS: IDENTITY_LIMIT,
  AGENTWIRE_IDENTITY_MAX_TURNS: IDENTITY_LIMIT,
  AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: IDENTITY_LIMIT,
};

const identityOf = (index: number) => `user-${Math.floor(index / SESSIONS_PER_IDENTITY)}`;

/** HS256 tokens for sessions `first`..`first + count - 1`, as an operator's backend mints them: `sub`, `iat`, `exp`. */
function mintJwts(first: number, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject(identityOf(first + i)).setIssuedAt().setExpirationTime(JWT_LIFETIME).sign(JWT_KEY),
    ),
  );
}

/** Sessions made so far on each auth-on server, so identities keep counting across `prepareLinks` calls. */
const madeOn = new WeakMap<ChildServer, number>();

const authOff: ServerKind = { ...agentwire, label: "auth off (open mode)" };

const authOn: ServerKind = {
  ...agentwire,
  label: "auth on (JWT per session)",
  start: ({ tokensPerTurn, nodeArgs }) => startAgentwire({ tokensPerTurn, nodeArgs, env: AUTH_ENV }),
  async prepareLinks(server, count) {
    const first = madeOn.get(server) ?? 0;
    madeOn.set(server, first + count);
    const tokens = await mintJwts(first, count);
    const sessions = await createSessions(HOST, server.port, count, {
      request: (i) => ({ authorization: `Bearer ${tokens[i]}` }),
      timeoutMs: CREATE_TIMEOUT_MS,
    });
    // Links authenticate with the session token the create answered, never with the JWT.
    return sessions.map((s) => `/v1/sessions/${s.sessionId}/ws?token=${s.token}`);
  },
};

const KINDS: readonly ServerKind[] = [authOff, authOn];

// ---------------------------------------------------------------- session creations per second

interface CreateMode {
  id: "open" | "key" | "jwt";
  label: string;
  env?: Record<string, string>;
  /** Every request of one server's run, built before any is sent: minting is never inside the window. */
  requests(count: number): Promise<CreateRequest[]>;
}

const CREATE_MODES: readonly CreateMode[] = [
  { id: "open", label: "open mode", requests: async (count) => Array.from({ length: count }, () => ({})) },
  {
    id: "key",
    label: "API key (+ user body)",
    env: AUTH_ENV,
    requests: async (count) => Array.from({ length: count }, (_, i) => ({ authorization: `Bearer ${API_KEY}`, body: JSON.stringify({ user: identityOf(i) }) })),
  },
  {
    id: "jwt",
    label: "JWT (HS256)",
    env: AUTH_ENV,
    requests: async (count) => (await mintJwts(0, count)).map((token) => ({ authorization: `Bearer ${token}` })),
  },
];

interface CreateRun {
  mode: CreateMode;
  count: number;
  elapsedMs: number;
  serverCpuMs: number;
  clientCpuMs: number;
  machineBusyMs: number;
  machineStealMs: number;
}

const perSecond = (r: CreateRun) => (r.count * 1000) / r.elapsedMs;
const serverUs = (r: CreateRun) => (r.serverCpuMs * 1000) / r.count;
const clientUs = (r: CreateRun) => (r.clientCpuMs * 1000) / r.count;

async function measureCreates(mode: CreateMode, sizes: Sizes, nodeArgs?: string[]): Promise<CreateRun> {
  const server = await startAgentwire({ nodeArgs, env: mode.env });
  try {
    const requests = await mode.requests(sizes.createWarmup + sizes.creates);
    const options = (offset: number) => ({ connections: CREATE_CONCURRENCY, timeoutMs: CREATE_TIMEOUT_MS, request: (i: number) => requests[offset + i] ?? {} });
    // First-use code paths (and the JIT) warm up on the same server before the clock starts.
    await createSessions(HOST, server.port, sizes.createWarmup, options(0));
    const cpuBefore = cpuMs(server.pid);
    const clientBefore = process.cpuUsage();
    const machineBefore = machineCpu();
    const started = performance.now();
    const made = await createSessions(HOST, server.port, sizes.creates, options(sizes.createWarmup));
    const elapsedMs = performance.now() - started;
    const client = process.cpuUsage(clientBefore);
    const machine = machineCpu();
    return {
      mode,
      count: made.length,
      elapsedMs,
      serverCpuMs: cpuMs(server.pid) - cpuBefore,
      clientCpuMs: (client.user + client.system) / 1000,
      machineBusyMs: machine.busyMs - machineBefore.busyMs,
      machineStealMs: machine.stealMs - machineBefore.stealMs,
    };
  } finally {
    await server.stop();
  }
}

/** Share of one core above which a process counts as saturated (as in the cpu section). */
const SATURATED = 0.9;
/** Cores' worth of CPU used by other processes above which they, not we, set the pace. */
const OTHERS_BUSY = 0.3;

function createLimit(r: CreateRun): string {
  if (r.serverCpuMs / r.elapsedMs >= SATURATED) return "server CPU";
  if (r.clientCpuMs / r.elapsedMs >= SATURATED) return "CLIENT CPU";
  const others = (r.machineBusyMs - r.serverCpuMs - r.clientCpuMs) / r.elapsedMs;
  return others >= OTHERS_BUSY ? "other processes" : "round trips";
}

// ---------------------------------------------------------------- interleaved rounds

/** Runs `measure` for every item, `rounds` times, alternating the order (ABBA) so drift on the host hits both alike. */
async function interleaved<K, R>(items: readonly K[], rounds: number, measure: (item: K, round: number) => Promise<R>): Promise<Map<K, R[]>> {
  const all = new Map<K, R[]>(items.map((k) => [k, []]));
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? items : [...items].reverse();
    for (const item of order) all.get(item)?.push(await measure(item, round));
  }
  return all;
}

/** The run of each item with the lowest `score`. */
function bestOf<K, R>(all: Map<K, R[]>, score: (r: R) => number): Map<K, R> {
  const out = new Map<K, R>();
  for (const [k, runs] of all) {
    const best = [...runs].sort((a, b) => score(a) - score(b))[0];
    if (best) out.set(k, best);
  }
  return out;
}

// ---------------------------------------------------------------- report

const usPerToken = (m: CpuMeasured) => m.usPerToken;

function cpuTable(best: Map<ServerKind, CpuMeasured>, all: Map<ServerKind, CpuMeasured[]>, sizes: CpuSizes): Table {
  const cores = availableParallelism();
  const base = best.get(authOff);
  const col = (f: (r: CpuMeasured) => string) => KINDS.map((k) => {
    const r = best.get(k);
    return r ? f(r) : "-";
  });
  const perSec = (r: CpuMeasured, n: number) => (n * 1000) / r.load.elapsedMs;
  return {
    title:
      `Auth and the token path: CPU per delivered token, ${sizes.sessions} sessions streaming ${num(sizes.tokensPerTurn)}-token turns back to back, ` +
      `${num(sizes.measureMs / 1000, 1)} s window, best of ${sizes.rounds} interleaved round${sizes.rounds > 1 ? "s" : ""}`,
    columns: ["", ...KINDS.map((k) => k.label)],
    rows: [
      ["server CPU per token (us)", ...col((r) => num(r.usPerToken, 3))],
      [`  vs auth off (target <= ${AUTH_RATIO_TARGET}x)`, ...col((r) => ratio(r.usPerToken, base?.usPerToken))],
      ["  all rounds (us)", ...KINDS.map((k) => (all.get(k) ?? []).map((r) => num(r.usPerToken, 3)).join(" / "))],
      ["tokens/s delivered", ...col((r) => num(perSec(r, r.load.tokens)))],
      ["merged frames (from)", ...col((r) => percent(r.load.mergedFrames, r.load.tokenFrames, 1))],
      ["turns completed", ...col((r) => num(r.load.turns))],
      null,
      ...loadRows(col, cores),
    ],
  };
}

function memoryTable(best: Map<ServerKind, MemoryMeasured>, all: Map<ServerKind, MemoryMeasured[]>, count: number, rounds: number): Table {
  const base = best.get(authOff);
  const col = (f: (r: MemoryMeasured) => string) => KINDS.map((k) => {
    const r = best.get(k);
    return r ? f(r) : "-";
  });
  const mb = (kb: number | null) => num(kb === null ? null : kb / 1024, 1);
  return {
    title:
      `Auth at rest: RSS of ${num(count)} sessions with an idle WebSocket each` +
      (rounds > 1 ? `, lowest KB per session of ${rounds} interleaved rounds` : ", 1 round"),
    columns: ["", ...KINDS.map((k) => k.label)],
    rows: [
      ["RSS before (MB)", ...col((r) => mb(r.beforeKb))],
      ["RSS with sessions, unattached (MB)", ...col((r) => mb(r.sessionsKb))],
      ["RSS with sessions + idle links (MB)", ...col((r) => mb(r.afterKb))],
      null,
      ["KB per idle attached session", ...col((r) => num(perLink(r), 2))],
      [`  vs auth off (target <= ${AUTH_RATIO_TARGET}x)`, ...col((r) => ratio(perLink(r), base ? perLink(base) : null))],
      ["  all rounds (KB)", ...KINDS.map((k) => (all.get(k) ?? []).map((r) => num(perLink(r), 2)).join(" / "))],
      ["  first half: the session (KB)", ...col((r) => (r.sessionsKb === null ? "-" : num((r.sessionsKb - r.beforeKb) / half(r), 2)))],
      ["  first half: the WebSocket (KB)", ...col((r) => num((r.midKb - (r.sessionsKb ?? r.beforeKb)) / half(r), 2))],
      ["marginal KB, second half", ...col((r) => num(marginal(r), 2))],
      [`  vs auth off (target <= ${AUTH_RATIO_TARGET}x)`, ...col((r) => ratio(marginal(r), base ? marginal(base) : null))],
    ],
  };
}

function createTable(best: Map<CreateMode, CreateRun>, all: Map<CreateMode, CreateRun[]>, sizes: Sizes): Table {
  const cores = availableParallelism();
  const open = best.get(CREATE_MODES[0] as CreateMode);
  const col = (f: (r: CreateRun) => string) => CREATE_MODES.map((m) => {
    const r = best.get(m);
    return r ? f(r) : "-";
  });
  return {
    title:
      `Session creation over HTTP: ${num(sizes.creates)} POST /v1/sessions after ${num(sizes.createWarmup)} warmup ones, ${CREATE_CONCURRENCY} in flight ` +
      `on keep-alive connections, fresh server per mode, ` +
      (sizes.createRounds > 1 ? `best of ${sizes.createRounds} interleaved rounds` : "1 round"),
    columns: ["", ...CREATE_MODES.map((m) => m.label)],
    rows: [
      ["creations/s", ...col((r) => num(perSecond(r)))],
      ["  vs open mode", ...col((r) => ratio(perSecond(r), open ? perSecond(open) : null))],
      ["  all rounds", ...CREATE_MODES.map((m) => (all.get(m) ?? []).map((r) => num(perSecond(r))).join(" / "))],
      [`mean time per create, ${CREATE_CONCURRENCY} in flight (ms)`, ...col((r) => num((r.elapsedMs * CREATE_CONCURRENCY) / r.count, 3))],
      ["server CPU per create (us)", ...col((r) => num(serverUs(r), 1))],
      ["  vs open mode", ...col((r) => ratio(serverUs(r), open ? serverUs(open) : null))],
      ["client CPU per create (us)", ...col((r) => num(clientUs(r), 1))],
      null,
      ["server CPU (of one core)", ...col((r) => percent(r.serverCpuMs, r.elapsedMs))],
      ["client CPU (of one core)", ...col((r) => percent(r.clientCpuMs, r.elapsedMs))],
      [`machine busy (of ${cores} cores)`, ...col((r) => percent(r.machineBusyMs, r.elapsedMs * cores))],
      ["  stolen by the host", ...col((r) => percent(r.machineStealMs, r.elapsedMs * cores))],
      ["limited by", ...col((r) => createLimit(r))],
    ],
  };
}

/** Where the idle-session RSS of each side goes: live JS heap after a forced GC, and the rest (slack, native). */
async function memoryBreakdown(ctx: BenchContext, count: number): Promise<Table> {
  const probes = new Map<ServerKind, [HeapProbe, HeapProbe, HeapProbe]>();
  for (const kind of KINDS) {
    ctx.log(`auth: heap breakdown: ${kind.label}: ${num(count)} idle links (--expose-gc)`);
    probes.set(kind, await stages(kind, count));
  }
  const per = (kind: ServerKind, f: (p: HeapProbe) => number, from: 0 | 1, to: 1 | 2) => {
    const p = probes.get(kind);
    return p ? (f(p[to]) - f(p[from])) / count : null;
  };
  return {
    title: `Auth at rest, breakdown: KB per session (separate run with --expose-gc; heap read after a forced GC)`,
    columns: ["", ...KINDS.flatMap((k) => [`${k.label}: session`, "+ WebSocket"]), "on / off, total"],
    rows: FIGURES.map(([label, f]) => [
      label,
      ...KINDS.flatMap((k) => [num(per(k, f, 0, 1), 2), num(per(k, f, 1, 2), 2)]),
      ratio(per(authOn, f, 0, 2), per(authOff, f, 0, 2)),
    ]),
  };
}

function ratioTarget(label: string, value: number | null): Target {
  return {
    label,
    measured: value === null || !Number.isFinite(value) ? "-" : `${value.toFixed(2)}x`,
    met: value === null || !Number.isFinite(value) ? null : value <= AUTH_RATIO_TARGET,
  };
}

export const authSection: BenchSection = {
  id: "auth",
  title: "Session-creation auth",
  async run(ctx: BenchContext): Promise<SectionReport> {
    const sizes = ctx.quick ? QUICK : FULL;
    const notes: string[] = [];
    const tables: Table[] = [];

    const cpuAll = await interleaved(KINDS, sizes.cpu.rounds, async (kind, round) => {
      ctx.log(`auth: CPU round ${round}/${sizes.cpu.rounds}: ${kind.label}: ${sizes.cpu.sessions} sessions x ${num(sizes.cpu.tokensPerTurn)} tokens`);
      const m = await measureCpu(kind, sizes.cpu);
      if (m.load.errors > 0) notes.push(`${kind.label}, CPU round ${round}: ${m.load.errors} error frames or dropped links; first: ${m.load.firstError}`);
      return m;
    });
    const cpuBest = bestOf(cpuAll, usPerToken);
    tables.push(cpuTable(cpuBest, cpuAll, sizes.cpu));

    const memoryAll = await interleaved(KINDS, sizes.memoryRounds, (kind, round) => {
      ctx.log(`auth: memory round ${round}/${sizes.memoryRounds}: ${kind.label}: ${num(sizes.idleSessions)} idle links`);
      return measureMemory(kind, sizes.idleSessions, ctx);
    });
    const memoryBest = bestOf(memoryAll, perLink);
    tables.push(memoryTable(memoryBest, memoryAll, sizes.idleSessions, sizes.memoryRounds));
    const memOff = memoryBest.get(authOff);
    const memOn = memoryBest.get(authOn);
    const rssRatio = memOn && memOff ? perLink(memOn) / perLink(memOff) : null;
    const marginalRatio = memOn && memOff ? marginal(memOn) / marginal(memOff) : null;
    const breakdown = ctx.profile || [rssRatio, marginalRatio].some((r) => r !== null && r > AUTH_RATIO_TARGET);
    if (breakdown) tables.push(await memoryBreakdown(ctx, sizes.idleSessions));

    const createAll = await interleaved(CREATE_MODES, sizes.createRounds, (mode, round) => {
      ctx.log(`auth: create round ${round}/${sizes.createRounds}: ${mode.label}: ${num(sizes.creates)} creates, ${CREATE_CONCURRENCY} in flight`);
      return measureCreates(mode, sizes);
    });
    const createBest = bestOf(createAll, (r) => -perSecond(r));
    tables.push(createTable(createBest, createAll, sizes));
    if (ctx.profile) {
      ctx.log("auth: profiling agentwire under --cpu-prof while it creates sessions with JWTs");
      const jwt = CREATE_MODES.find((m) => m.id === "jwt") as CreateMode;
      tables.push(...(await profileAgentwire(ctx, (nodeArgs) => measureCreates(jwt, sizes, nodeArgs))));
    }

    notes.push(
      `Auth off is open mode with identity limits 0, as in the other sections: every session is ip:127.0.0.1 and nothing is counted. ` +
        `Auth on is AGENTWIRE_AUTH=required with AGENTWIRE_JWT_SECRET and one API key; each session is created with its own HS256 JWT, minted in the bench ` +
        `process with jose SignJWT before the server is measured, with a new sub every ${SESSIONS_PER_IDENTITY} sessions; the AGENTWIRE_IDENTITY_* session, connection, ` +
        `turn and sessions-per-minute limits are ${num(Number(IDENTITY_LIMIT))}, so every create, link and turn is admitted through the quota store and none is refused.`,
      "The JWT is verified once, at the create; links authenticate with the session token in both columns, so on the token path auth on adds only the per-turn " +
        "and per-link quota admissions and the principal each session holds. A ratio within a few percent of 1.00x there is run-to-run noise on this host: read it with the all-rounds row.",
      "RSS per session: auth on adds each session's principal (its identity string) and the quota store's counts for " +
        `${num(Math.ceil((sizes.idleSessions + WARMUP_LINKS) / SESSIONS_PER_IDENTITY))} identities to the live heap, and whatever the creates leave behind outside it: ` +
        "jose verifies HS256 through WebCrypto, whose jobs run on the libuv threadpool, so native memory they allocate can stay in those threads' malloc arenas. " +
        `RSS includes heap slack GC has not returned; at ${num(sizes.idleSessions)} sessions a few hundred KB of slack moves the ratio by a few percent. ` +
        "A first half far above the marginal second half is one-time growth rather than a cost per session." +
        (breakdown ? " The breakdown is one more run of each side, taken because an RSS target was missed or --profile was given." : ""),
      `Creates: one node:http client in the bench process, ${CREATE_CONCURRENCY} keep-alive connections; API-key creates carry a JSON body {"user"} changing every ` +
        `${SESSIONS_PER_IDENTITY} sessions (identity key:bench/<user>), JWT creates a token whose sub does, and both are counted in the quotas; open-mode creates count nothing. ` +
        "The ratios therefore cover credential checking, the body or claims parse and the quota admission together. Tokens are minted before the clock starts.",
      "When the client is the limit (limited by: CLIENT CPU) or neither process fills a core (other processes, round trips), creations/s is a floor: compare server CPU per create, which the client's pace does not change. " +
        "Server CPU counts every thread, the threadpool's WebCrypto work included, so it can pass one core.",
      `Server CPU is read from /proc/<pid>/stat in clock ticks of ${num(1000 / ticksPerSecond())} ms: over ${num(sizes.creates)} creates one tick is ` +
        `${num((1000 * 1000) / ticksPerSecond() / sizes.creates, 1)} us per create${ctx.quick ? ", so quick figures are coarse" : ""}.`,
    );
    for (const [kind, m] of cpuBest) {
      const limit = limitOf(m.load);
      if (limit !== "server CPU") notes.push(`${kind.label}: the token load was limited by ${limit}; CPU per token still holds, tokens/s is a floor.`);
      if (!m.nativeUws) notes.push(`${kind.label}: uWebSockets.js ran its JS fallback, not the native binary.`);
    }
    const off = cpuBest.get(authOff);
    const on = cpuBest.get(authOn);
    return {
      tables,
      notes,
      targets: [
        ratioTarget(`auth on: CPU per token <= ${AUTH_RATIO_TARGET}x auth off`, on && off ? on.usPerToken / off.usPerToken : null),
        ratioTarget(`auth on: RSS per idle session <= ${AUTH_RATIO_TARGET}x auth off`, rssRatio),
        ratioTarget(`auth on: marginal RSS per idle session <= ${AUTH_RATIO_TARGET}x auth off`, marginalRatio),
      ],
    };
  },
};
