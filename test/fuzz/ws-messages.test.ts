// Property: over WebSocket, each malformed client message gets exactly one typed error, the link and the node live on, and the session still completes a turn.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "@agentwire/protocol";
import { MB, type ServerProc, type Session, expectCompletedTurn, startServerProc, warmedRssBytes } from "../helpers/server-proc.js";
import { TestClient, logged } from "../helpers/ws-client.js";
import { InFlight, type Malformed, assertOptions, describeMalformed, fuzzSettings, isErrorCode, malformedMessage } from "./arbitraries.js";

const limits = { maxPayloadBytes: 128 * 1024, maxInputChars: 32 * 1024 };
const RSS_HEADROOM_MB = 64;
const settings = fuzzSettings(120, 2_000);

/** What a client can check of one answer; `field` below an expected `under` path reads as that path. */
function seen(frame: ServerMessage | undefined, m: Malformed) {
  if (frame?.type !== "error") return { frame };
  const { under } = m.expect;
  const below = under !== undefined && (frame.field === under || frame.field?.startsWith(`${under}.`));
  return { type: "error", code: frame.code, known: isErrorCode(frame.code), field: below ? `${under} (or below)` : frame.field, id: frame.id, seq: frame.seq, retryable: frame.retryable };
}

function wanted(m: Malformed) {
  const { code, field, under, id } = m.expect;
  return { type: "error", code, known: true, field: field ?? (under !== undefined ? `${under} (or below)` : undefined), id, seq: undefined, retryable: false };
}

describe("malformed client messages over WebSocket", () => {
  let proc: ServerProc;
  beforeAll(async () => {
    proc = await startServerProc("fuzz-ws", { AGENTWIRE_MAX_PAYLOAD_BYTES: limits.maxPayloadBytes, AGENTWIRE_MAX_INPUT_CHARS: limits.maxInputChars });
  });
  afterAll(() => proc?.stop());

  it(
    `answers each with exactly one typed error and keeps the link; the node survives, RSS stays within baseline + ${RSS_HEADROOM_MB} MB, and the session completes a turn`,
    async () => {
      const baseline = await warmedRssBytes(proc);

      const s: Session = await proc.createSession();
      const url = TestClient.sessionUrl(proc.node.wsBase, s);
      // A second client on the session: protocol errors are the sender's, never broadcast.
      const watcher = await TestClient.connect(url);
      let client = await TestClient.connect(url);
      await Promise.all([watcher.next("session"), client.next("session")]);
      let probes = 0;
      const runs = new InFlight();
      const sendBatch = runs.track(async (batch: Malformed[]) => {
        proc.expectAlive("before this batch");
        // A link lost in an earlier (failed) run is replaced, so shrinking tests each batch on its own.
        if (client.closeCode !== null) {
          client = await TestClient.connect(url);
          await client.next("session");
        }
        const start = client.messages.length;
        const probe = `probe-${++probes}`;
        for (const m of batch) {
          if (m.binary) client.ws.send(m.binary, { binary: true });
          else client.ws.send(m.text);
        }
        client.send({ type: "ping", id: probe });
        await client.waitUntil((ms) => client.closeCode !== null || proc.exit() !== null || ms.some((x, i) => i >= start && x.type === "pong" && x.id === probe), `the pong for ${probe}`);
        proc.expectAlive(`during the batch ${batch.map(describeMalformed).join(", ")}`);
        expect(client.closeCode, "the link stays open").toBeNull();
        const answers = client.messages.slice(start);
        const got = answers.map((f, i) => (i < batch.length ? seen(f, batch[i] as Malformed) : { frame: f }));
        expect(got, `answers to ${batch.map(describeMalformed).join(", ")}`).toEqual([...batch.map(wanted), { frame: expect.objectContaining({ type: "pong", id: probe }) }]);
      });
      await fc.assert(fc.asyncProperty(fc.array(malformedMessage(limits, "ws"), { minLength: 1, maxLength: 8 }), sendBatch), assertOptions(settings));
      await runs.idle();

      proc.expectAlive("after the run");
      expect(client.closeCode).toBeNull();
      // Nothing malformed started a turn, and nothing reached the other client.
      expect(logged(client.messages)).toEqual([]);
      expect(watcher.messages.map((m) => m.type)).toEqual(["session"]);
      const snapshot = await fetch(`${proc.node.base}/v1/sessions/${s.sessionId}`, { headers: { authorization: `Bearer ${s.token}` } });
      expect(snapshot.status).toBe(200);
      expect(await snapshot.json()).toMatchObject({ lastSeq: 0, pendingInput: "", config: { tools: [] }, turns: [] });

      const start = client.messages.length;
      client.send({ type: "input", id: "after-fuzz", text: "2 * 21" });
      await client.waitForTurnEnd("t1");
      expect(client.messages[start]).toEqual({ type: "ack", id: "after-fuzz", turn: "t1" });
      expectCompletedTurn(client.messages, "t1", 0);
      expect(client.messages.find((m) => m.type === "tool" && m.phase === "result")).toMatchObject({ output: { value: 42 } });
      await watcher.waitForTurnEnd("t1");
      expectCompletedTurn(watcher.messages, "t1", 0);

      const grownMb = (proc.rssBytes() - baseline) / MB;
      expect(grownMb, `RSS grew ${grownMb.toFixed(1)} MB`).toBeLessThan(RSS_HEADROOM_MB);
      client.close();
      watcher.close();
    },
    settings.testTimeoutMs,
  );
});
