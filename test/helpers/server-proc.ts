// A demo agentwire node as a child process for hostile-input tests: started through node-proc, watched for exit, measured by RSS, checked with a full turn.
import { readFileSync } from "node:fs";
import { expect } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { type NodeProc, startNode } from "./node-proc.js";
import { TestClient } from "./ws-client.js";

/** Fast demo turns, and limits high enough that floods of bad input never meet a rate limit instead of the parser. */
export const FUZZ_NODE_ENV: Record<string, string | number> = {
  AGENTWIRE_DEMO_TOKENS_PER_SEC: 0,
  AGENTWIRE_DEMO_REPLY_WORDS: 3,
  AGENTWIRE_INPUT_RATE_PER_SESSION: 1_000_000,
  AGENTWIRE_INPUT_BURST_PER_SESSION: 1_000_000,
  AGENTWIRE_CONNECT_RATE_PER_IP: 1_000_000,
  AGENTWIRE_CONNECT_BURST_PER_IP: 1_000_000,
};

export interface Session {
  sessionId: string;
  token: string;
}

export interface ServerProc {
  readonly node: NodeProc;
  readonly pid: number;
  /** Null while the process runs; its exit code (or signal) once it is gone. */
  exit(): string | null;
  /** Resident set size now, from /proc/<pid>/status (VmRSS). */
  rssBytes(): number;
  createSession(): Promise<Session>;
  /** Fails with the exit and the node's last output when the process is gone. */
  expectAlive(context?: string): void;
  stop(): Promise<void>;
}

export async function startServerProc(name: string, env: Record<string, string | number> = {}): Promise<ServerProc> {
  const node = await startNode(name, { ...FUZZ_NODE_ENV, ...env });
  const pid = node.child.pid as number;
  let exit: string | null = null;
  node.child.once("exit", (code, signal) => {
    exit = signal ? `signal ${signal}` : `code ${code}`;
  });
  const proc: ServerProc = {
    node,
    pid,
    exit: () => exit,
    rssBytes: () => rssBytes(pid),
    async createSession() {
      proc.expectAlive("before creating a session");
      const res = await fetch(`${node.base}/v1/sessions`, { method: "POST" });
      if (res.status !== 201) throw new Error(`create session: HTTP ${res.status}`);
      return (await res.json()) as Session;
    },
    expectAlive(context = "") {
      if (exit !== null) {
        throw new Error(`node ${name} exited (${exit})${context ? ` ${context}` : ""}; its last output:\n${node.output().slice(-4000)}`);
      }
    },
    async stop() {
      if (exit === null) await node.kill();
    },
  };
  return proc;
}

/** VmRSS of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

export const MB = 1024 * 1024;

/**
 * A whole turn as a client saw it, among `messages`: `turn_start` first, `usage` then `turn_end`
 * with status `completed` last, every logged event of the session from `afterSeq + 1` on with
 * consecutive seqs and nobody else's events between them.
 */
export function expectCompletedTurn(messages: readonly ServerMessage[], turn: string, afterSeq: number): void {
  const events = messages.filter((m): m is ServerMessage & { seq: number } => "seq" in m && typeof m.seq === "number" && m.seq > afterSeq);
  expect(events.length, "logged events of the turn").toBeGreaterThanOrEqual(3);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => afterSeq + 1 + i));
  expect(events.every((e) => "turn" in e && e.turn === turn), "every event belongs to the turn").toBe(true);
  expect(events[0]).toMatchObject({ type: "turn_start", turn });
  expect(events.at(-2)).toMatchObject({ type: "usage", turn, partial: false });
  expect(events.at(-1)).toMatchObject({ type: "turn_end", turn, status: "completed" });
  expect(events.filter((e) => e.type === "turn_end")).toHaveLength(1);
}

/** Runs one turn on a fresh session, then reads RSS: a baseline that includes a warmed-up engine and agent. */
export async function warmedRssBytes(proc: ServerProc): Promise<number> {
  const warm = await proc.createSession();
  const client = await TestClient.connect(TestClient.sessionUrl(proc.node.wsBase, warm));
  client.send({ type: "input", text: "2 * 21" });
  await client.waitForTurnEnd("t1");
  client.close();
  return proc.rssBytes();
}
