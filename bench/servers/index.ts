// The servers compared side by side: agentwire itself, two bare baselines and the peers people build with, each run as a child process.
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../../src/node-flags.js";
import { type ChildServer, startChildServer } from "../proc.js";
import { SIO_PATH } from "../raw-sio-client.js";
import { createSessions } from "./agentwire-sessions.js";

export interface ServerKind {
  id: "agentwire" | "uws" | "ws" | "sio-ws" | "sio-uws" | "express-ws";
  label: string;
  /** `socket.io`: links speak engine.io v4 + Socket.IO (see raw-sio-client.ts). Absent: plain WebSocket frames. */
  framing?: "socket.io";
  start(options: { tokensPerTurn: number; nodeArgs?: string[] }): Promise<ChildServer>;
  /** Upgrade paths for `count` WebSockets, creating whatever they attach to first (agentwire: sessions). */
  prepareLinks(server: ChildServer, count: number): Promise<string[]>;
  /** The client message that starts one turn of `tokens` tokens. */
  startMessage(tokens: number): string;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export const HOST = "127.0.0.1";

export interface AgentwireStart {
  /** Replies of about this many tokens from the demo agent. @default 16 */
  tokensPerTurn?: number;
  nodeArgs?: string[];
  /** Overrides the bench defaults (demo agent at full speed, limits lifted for one client IP). */
  env?: Record<string, string>;
}

/** Starts `agentwire serve` as a child with the bench's configuration plus `env`. */
export function startAgentwire({ tokensPerTurn = 16, nodeArgs, env }: AgentwireStart = {}): Promise<ChildServer> {
  return startChildServer({
    script: here("../../src/cli.js"),
    args: ["serve"],
    // As `npm start` runs it.
    nodeArgs: [...NODE_FLAGS, ...(nodeArgs ?? [])],
    env: {
      PORT: "0",
      HOST,
      LOG_LEVEL: "silent",
      AGENTWIRE_AGENT: "demo",
      AGENTWIRE_DEMO_TOKENS_PER_SEC: "0",
      // The demo wraps the filler words in about a dozen tokens of its own.
      AGENTWIRE_DEMO_REPLY_WORDS: String(Math.max(0, tokensPerTurn - 12)),
      // Every bench link comes from 127.0.0.1: the per-IP guard would otherwise refuse most of them.
      AGENTWIRE_CONNECT_RATE_PER_IP: "1000000",
      AGENTWIRE_CONNECT_BURST_PER_IP: "1000000",
      AGENTWIRE_MAX_SESSIONS: "1000000",
      AGENTWIRE_MAX_CONNECTIONS: "1000000",
      // ...and so would the per-identity quotas, for which every bench session is one identity (the address).
      AGENTWIRE_AUTH: "none",
      AGENTWIRE_IDENTITY_MAX_SESSIONS: "0",
      AGENTWIRE_IDENTITY_MAX_CONNECTIONS: "0",
      AGENTWIRE_IDENTITY_MAX_TURNS: "0",
      AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: "0",
      ...env,
    },
  });
}

export const agentwire: ServerKind = {
  id: "agentwire",
  label: "agentwire",
  start: ({ tokensPerTurn, nodeArgs }) => startAgentwire({ tokensPerTurn, nodeArgs }),
  async prepareLinks(server, count) {
    const sessions = await createSessions(HOST, server.port, count);
    return sessions.map((s) => `/v1/sessions/${s.sessionId}/ws?token=${s.token}`);
  },
  startMessage: () => JSON.stringify({ type: "input", text: "1 + 2" }),
};

/** A bench server script as a child, with the same Node flags as agentwire, so only the code differs. */
function startScript(script: string, args: string[], nodeArgs: string[] | undefined): Promise<ChildServer> {
  return startChildServer({ script: here(script), args, nodeArgs: [...NODE_FLAGS, ...(nodeArgs ?? [])] });
}

function bare(id: "uws" | "ws" | "express-ws", label: string, script: string): ServerKind {
  return {
    id,
    label,
    start: ({ nodeArgs }) => startScript(script, [], nodeArgs),
    prepareLinks: async (_server, count) => Array.from({ length: count }, () => "/ws"),
    startMessage: (tokens) => `go ${tokens}`,
  };
}

export const bareUws = bare("uws", "bare uWS", "./bare-uws.js");
export const bareWs = bare("ws", "bare ws", "./bare-ws.js");

/** Table column order; ratios are taken against `bareUws`. */
export const SERVER_KINDS: readonly ServerKind[] = [agentwire, bareUws, bareWs];

function socketIo(engine: "ws" | "uws", label: string): ServerKind {
  return {
    id: engine === "ws" ? "sio-ws" : "sio-uws",
    label,
    framing: "socket.io",
    start: ({ nodeArgs }) => startScript("./socketio.js", [engine], nodeArgs),
    prepareLinks: async (_server, count) => Array.from({ length: count }, () => SIO_PATH),
    startMessage: (tokens) => `42${JSON.stringify(["go", tokens])}`,
  };
}

export const socketIoWs = socketIo("ws", "Socket.IO (ws)");
export const socketIoUws = socketIo("uws", "Socket.IO (uWS)");
export const expressWs = bare("express-ws", "Express+ws", "./express-ws.js");

/** The peers section's columns: agentwire and the baselines, then what people build token streamers with. */
export const PEER_KINDS: readonly ServerKind[] = [...SERVER_KINDS, socketIoWs, socketIoUws, expressWs];

/** The SSE peer: Express writing one event per token on agentwire's routes (see express-sse.ts). */
export function startExpressSse(nodeArgs?: string[]): Promise<ChildServer> {
  return startScript("./express-sse.js", [], nodeArgs);
}
