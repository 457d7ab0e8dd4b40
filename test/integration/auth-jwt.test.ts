// Signed client tokens on POST /v1/sessions: HS256 with a shared secret, RS256/ES256/EdDSA through a JWKS file
// or URL, every way a token can be wrong, and the claims that pin a session's policy.
import { type Server, createServer } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestServer, startTestServer } from "../helpers/server.js";

const SECRET = "jwt-secret-for-tests-0123456789abcdef";
const OTHER_SECRET = "another-secret-nobody-configured-0123";
const MAX_LIFETIME_S = 600;
/** The per-identity defaults every server here runs with: a token's `limits` claim overrides some. */
const LIMITS = { sessions: 50, connections: 7, turns: 3, sessions_per_minute: 0, tokens_per_minute: 0, tokens_per_day: 0 };
const ENV = {
  AGENTWIRE_AUTH: "auto",
  AGENTWIRE_JWT_MAX_LIFETIME_S: MAX_LIFETIME_S,
  AGENTWIRE_IDENTITY_MAX_SESSIONS: LIMITS.sessions,
  AGENTWIRE_IDENTITY_MAX_CONNECTIONS: LIMITS.connections,
  AGENTWIRE_IDENTITY_MAX_TURNS: LIMITS.turns,
  AGENTWIRE_IDENTITY_SESSIONS_PER_MINUTE: LIMITS.sessions_per_minute,
} as const;

const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** A token signed by `key`; `iat`/`exp` default to now and now + 300 s, `null` leaves them out. */
async function mint(
  key: CryptoKey | Uint8Array,
  alg: string,
  claims: Record<string, unknown>,
  options: { kid?: string; iat?: number | null; exp?: number | null } = {},
): Promise<string> {
  const t = now();
  const payload: Record<string, unknown> = { ...claims };
  if (options.iat !== null) payload.iat = options.iat ?? t;
  if (options.exp !== null) payload.exp = options.exp ?? t + 300;
  return new SignJWT(payload).setProtectedHeader({ alg, typ: "JWT", ...(options.kid ? { kid: options.kid } : {}) }).sign(key);
}

const hs = (claims: Record<string, unknown>, options?: { iat?: number | null; exp?: number | null }, secret = SECRET) =>
  mint(new TextEncoder().encode(secret), "HS256", claims, options);

interface Answer {
  status: number;
  sessionId: string | undefined;
  error: { code: string; message: string; field?: string; retryable?: boolean } | undefined;
}

async function create(base: string, bearer: string | undefined, body?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}/v1/sessions`, { method: "POST", headers, body });
  const json = (await res.json()) as { sessionId?: string; error?: Answer["error"] };
  return { status: res.status, sessionId: json.sessionId, error: json.error };
}

describe("HS256 tokens (AGENTWIRE_JWT_SECRET)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...ENV, AGENTWIRE_JWT_SECRET: SECRET, AGENTWIRE_ALLOWED_MODELS: "m-pinned,m-other" });
  });
  afterAll(async () => {
    await server.close();
  });
  const principalOf = (answer: Answer) => server.engine.get(answer.sessionId as string)?.principal;

  it("a valid token creates a session (201) for identity jwt:<sub>, with the default limits", async () => {
    const answer = await create(server.base, await hs({ sub: "alice" }));
    expect(answer.status).toBe(201);
    expect(principalOf(answer)).toEqual({ identity: "jwt:alice", limits: LIMITS });
  });

  it("no credential is 401 unauthorized: a token server is not open", async () => {
    const answer = await create(server.base, undefined);
    expect(answer.status).toBe(401);
    expect(answer.error).toMatchObject({ code: "unauthorized", retryable: false });
  });

  it("an expired token is 401", async () => {
    const answer = await create(server.base, await hs({ sub: "alice" }, { iat: now() - 600, exp: now() - 60 }));
    expect(answer.status).toBe(401);
    expect(answer.error).toMatchObject({ code: "unauthorized", message: "the token has expired" });
  });

  it("a token signed with another secret is 401", async () => {
    const answer = await create(server.base, await hs({ sub: "alice" }, {}, OTHER_SECRET));
    expect(answer.status).toBe(401);
    expect(answer.error).toMatchObject({ code: "unauthorized", message: "the token's signature does not verify" });
  });

  it("an unsigned token (alg: none) is 401, and so is a signature stripped from a real token", async () => {
    const before = server.engine.sessionCount;
    const payload = b64({ sub: "mallory", iat: now(), exp: now() + 300 });
    const none = `${b64({ alg: "none", typ: "JWT" })}.${payload}.`;
    const answer = await create(server.base, none);
    expect(answer.status).toBe(401);
    expect(answer.error?.code).toBe("unauthorized");
    const real = await hs({ sub: "mallory" });
    const stripped = `${real.split(".").slice(0, 2).join(".")}.`;
    expect((await create(server.base, stripped)).status).toBe(401);
    // Another payload under a real signature.
    const other = b64({ sub: "admin", iat: now(), exp: now() + 300 });
    const swapped = `${real.split(".")[0]}.${other}.${real.split(".")[2]}`;
    expect((await create(server.base, swapped)).status).toBe(401);
    expect(server.engine.sessionCount).toBe(before);
  });

  it("a token without sub, or without exp, is 401", async () => {
    const noSub = await create(server.base, await hs({ name: "alice" }));
    expect(noSub.status).toBe(401);
    expect(noSub.error?.code).toBe("unauthorized");
    expect(noSub.error?.message).toContain("sub");
    const noExp = await create(server.base, await hs({ sub: "alice" }, { exp: null }));
    expect(noExp.status).toBe(401);
    expect(noExp.error?.message).toContain("exp");
  });

  it("a lifetime longer than AGENTWIRE_JWT_MAX_LIFETIME_S is 401 with field exp; exactly the maximum is taken", async () => {
    const t = now();
    const tooLong = await create(server.base, await hs({ sub: "alice" }, { iat: t, exp: t + MAX_LIFETIME_S + 1 }));
    expect(tooLong.status).toBe(401);
    expect(tooLong.error).toMatchObject({ code: "unauthorized", field: "exp" });
    // Without iat the lifetime counts from now.
    const noIat = await create(server.base, await hs({ sub: "alice" }, { iat: null, exp: now() + MAX_LIFETIME_S + 60 }));
    expect(noIat.status).toBe(401);
    expect(noIat.error?.field).toBe("exp");
    const atMax = await create(server.base, await hs({ sub: "alice" }, { iat: t, exp: t + MAX_LIFETIME_S }));
    expect(atMax.status).toBe(201);
  });

  it("claims pin the session's model, identity prompt, tools and limits", async () => {
    const token = await hs({ sub: "pinned-user", model: "m-pinned", system: "identity prompt", tools: ["calculator"], limits: { turns: 1 } });
    const answer = await create(server.base, token);
    expect(answer.status).toBe(201);
    expect(principalOf(answer)).toEqual({
      identity: "jwt:pinned-user",
      model: "m-pinned",
      system: "identity prompt",
      tools: ["calculator"],
      limits: { ...LIMITS, turns: 1 },
    });
  });

  it("a token plus a create body is 403 forbidden, field body", async () => {
    const answer = await create(server.base, await hs({ sub: "alice" }), JSON.stringify({ user: "someone-else" }));
    expect(answer.status).toBe(403);
    expect(answer.error).toMatchObject({ code: "forbidden", field: "body" });
  });

  it("a token whose model the operator does not allow is 403 forbidden, field model", async () => {
    const answer = await create(server.base, await hs({ sub: "alice", model: "m-expensive" }));
    expect(answer.status).toBe(403);
    expect(answer.error).toMatchObject({ code: "forbidden", field: "model" });
  });

  it("a token issued in the future cannot outlive AGENTWIRE_JWT_MAX_LIFETIME_S from now", async () => {
    const later = now() + 365 * 86_400;
    const answer = await create(server.base, await hs({ sub: "time-traveller" }, { iat: later, exp: later + 60 }));
    expect(answer.status).toBe(401);
  });

  it("a claim of the wrong shape is 401 naming it", async () => {
    const answer = await create(server.base, await hs({ sub: "alice", tools: "calculator" }));
    expect(answer.status).toBe(401);
    expect(answer.error).toMatchObject({ code: "unauthorized", field: "tools" });
  });
});

describe("API keys and client tokens on one server", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...ENV, AGENTWIRE_JWT_SECRET: SECRET, AGENTWIRE_API_KEYS: "backend=backend-secret-0123456789,dotted=my.secret.key-0123456789" });
  });
  afterAll(async () => {
    await server.close();
  });

  it("each credential gives its own kind of identity; a key holder may send a body, a token holder may not", async () => {
    const key = await create(server.base, "backend-secret-0123456789", JSON.stringify({ user: "u1" }));
    expect(key.status).toBe(201);
    expect(server.engine.get(key.sessionId as string)?.principal.identity).toBe("key:backend/u1");
    const jwt = await create(server.base, await hs({ sub: "u1" }));
    expect(jwt.status).toBe(201);
    expect(server.engine.get(jwt.sessionId as string)?.principal.identity).toBe("jwt:u1");
    expect((await create(server.base, "backend-secret-0123456789x")).status).toBe(401);
  });

  it("an API key whose secret contains dots still authenticates when tokens are configured too", async () => {
    const answer = await create(server.base, "my.secret.key-0123456789");
    expect(answer.status).toBe(201);
  });
});

interface SigningKey {
  alg: string;
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(alg: "RS256" | "ES256" | "EdDSA", kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === "EdDSA" ? { crv: "Ed25519" } : {});
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

describe("asymmetric tokens through AGENTWIRE_JWKS_FILE", () => {
  let dir: string;
  let server: TestServer;
  let keys: SigningKey[];
  beforeAll(async () => {
    keys = await Promise.all([signingKey("RS256", "rsa-1"), signingKey("ES256", "ec-1"), signingKey("EdDSA", "ed-1")]);
    dir = mkdtempSync(join(tmpdir(), "agentwire-jwks-"));
    const file = join(dir, "jwks.json");
    writeFileSync(file, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    server = await startTestServer({ ...ENV, AGENTWIRE_JWKS_FILE: file });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const alg of ["RS256", "ES256", "EdDSA"]) {
    it(`a valid ${alg} token is 201 for jwt:<sub>`, async () => {
      const key = keys.find((k) => k.alg === alg) as SigningKey;
      const answer = await create(server.base, await mint(key.privateKey, alg, { sub: `user-${alg}` }, { kid: key.kid }));
      expect(answer.status).toBe(201);
      expect(server.engine.get(answer.sessionId as string)?.principal.identity).toBe(`jwt:user-${alg}`);
    });
  }

  it("a token naming an unknown kid is 401", async () => {
    const rsa = keys[0] as SigningKey;
    const answer = await create(server.base, await mint(rsa.privateKey, "RS256", { sub: "alice" }, { kid: "rsa-2" }));
    expect(answer.status).toBe(401);
    expect(answer.error).toMatchObject({ code: "unauthorized", message: "no key matches the token's key id" });
  });

  it("a token signed by a key outside the set, under a listed kid, is 401", async () => {
    const stranger = await signingKey("ES256", "ec-1");
    const answer = await create(server.base, await mint(stranger.privateKey, "ES256", { sub: "alice" }, { kid: "ec-1" }));
    expect(answer.status).toBe(401);
    expect(answer.error?.code).toBe("unauthorized");
  });

  it("an HS256 token is 401 when no secret is configured", async () => {
    const answer = await create(server.base, await hs({ sub: "alice" }));
    expect(answer.status).toBe(401);
    expect(answer.error?.code).toBe("unauthorized");
  });
});

describe("asymmetric tokens through AGENTWIRE_JWKS_URL", () => {
  let jwksServer: Server;
  let server: TestServer;
  let key: SigningKey;
  let fetches = 0;
  beforeAll(async () => {
    key = await signingKey("ES256", "remote-ec-1");
    jwksServer = createServer((req, res) => {
      fetches++;
      if (req.url !== "/.well-known/jwks.json") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [key.jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    const { port } = jwksServer.address() as AddressInfo;
    server = await startTestServer({ ...ENV, AGENTWIRE_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` });
  });
  afterAll(async () => {
    await server.close();
    jwksServer.closeAllConnections();
    await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
  });

  it("a valid token is 201; the key set is fetched once and then cached", async () => {
    expect(fetches).toBe(0);
    const first = await create(server.base, await mint(key.privateKey, "ES256", { sub: "remote-user" }, { kid: key.kid }));
    expect(first.status).toBe(201);
    expect(server.engine.get(first.sessionId as string)?.principal.identity).toBe("jwt:remote-user");
    const second = await create(server.base, await mint(key.privateKey, "ES256", { sub: "remote-user-2" }, { kid: key.kid }));
    expect(second.status).toBe(201);
    expect(fetches).toBe(1);
  });

  it("a token under a kid the URL does not serve is 401", async () => {
    const answer = await create(server.base, await mint(key.privateKey, "ES256", { sub: "alice" }, { kid: "remote-ec-unknown" }));
    expect(answer.status).toBe(401);
    expect(answer.error?.code).toBe("unauthorized");
  });
});
