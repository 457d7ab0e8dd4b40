// Signed client tokens: short-lived JWTs from the operator's backend (HS256, or RS256/ES256/EdDSA through a JWKS).
import { readFileSync } from "node:fs";
import { type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify } from "jose";
import { CreateSessionRequest, fieldPath } from "@agentwire/protocol";
import { z } from "zod";

export interface JwtOptions {
  /** HS256 shared secret (at least 32 characters). */
  secret?: string;
  /** A JWKS file of public keys (RS256, ES256, EdDSA); read again on `reload()`. */
  jwksFile?: string;
  /** A JWKS URL, fetched when a token names a key id not seen yet (at most once per cooldown). */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Longest lifetime a token may have (`exp` minus `iat`, or minus now without `iat`), seconds. */
  maxLifetimeS: number;
  clockToleranceS: number;
}

/** The claims a token may carry beyond the standard ones: the same as an API-key holder's create body, with `sub` for `user`. */
export const TokenClaims = CreateSessionRequest.omit({ user: true }).extend({ sub: z.string().min(1).max(128) }).loose();
export type TokenClaims = z.infer<typeof TokenClaims>;

export type JwtResult = { ok: true; claims: TokenClaims } | { ok: false; message: string; field?: string };

const ASYMMETRIC = ["RS256", "ES256", "EdDSA"] as const;

/** Verifies client tokens with the configured keys; every failure is a short reason fit for a 401 body. */
export class JwtVerifier {
  /** The HS256 key, imported once: jose would import raw bytes again on every verify. */
  private readonly secret: Promise<CryptoKey> | null;
  private localSet: JWTVerifyGetKey | null = null;
  private readonly remoteSet: JWTVerifyGetKey | null;

  constructor(private readonly options: JwtOptions) {
    if (options.secret !== undefined && options.secret.length < 32) throw new Error("AGENTWIRE_JWT_SECRET must be at least 32 characters");
    this.secret = options.secret
      ? crypto.subtle.importKey("raw", new TextEncoder().encode(options.secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"])
      : null;
    if (options.jwksFile) this.localSet = createLocalJWKSet(readJwks(options.jwksFile));
    this.remoteSet = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 }) : null;
  }

  get configured(): boolean {
    return this.secret !== null || this.localSet !== null || this.remoteSet !== null;
  }

  /** Reads the JWKS file again (key rotation); throws, keeping the old set, when it is unreadable. */
  reload(): void {
    if (this.options.jwksFile) this.localSet = createLocalJWKSet(readJwks(this.options.jwksFile));
  }

  async verify(token: string): Promise<JwtResult> {
    let header: { alg?: unknown };
    try {
      header = JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString("utf8")) as { alg?: unknown };
    } catch {
      return { ok: false, message: "the token is not a JWT" };
    }
    const symmetric = header.alg === "HS256";
    const key = symmetric ? await this.secret : this.keySet(header);
    if (!key) return { ok: false, message: `tokens signed with ${String(header.alg)} are not accepted here` };
    let payload: JWTPayload;
    try {
      const options = {
        algorithms: symmetric ? ["HS256"] : [...ASYMMETRIC],
        issuer: this.options.issuer,
        audience: this.options.audience,
        clockTolerance: this.options.clockToleranceS,
        requiredClaims: ["sub", "exp"],
      };
      payload = (typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options)).payload;
    } catch (err) {
      return { ok: false, message: reasonOf(err) };
    }
    // From when it was issued, or from now when it claims to be issued later: a future `iat` must not stretch it.
    const now = Math.floor(Date.now() / 1000);
    const lifetime = (payload.exp as number) - Math.min(payload.iat ?? now, now);
    if (lifetime > this.options.maxLifetimeS) return { ok: false, message: `the token lives longer than ${this.options.maxLifetimeS} s`, field: "exp" };
    const claims = TokenClaims.safeParse(payload);
    if (!claims.success) {
      const issue = claims.error.issues[0];
      const field = issue ? fieldPath(issue) : undefined;
      return { ok: false, message: `claim ${field}: ${issue?.message}`, field };
    }
    return { ok: true, claims: claims.data };
  }

  private keySet(header: { alg?: unknown }): JWTVerifyGetKey | null {
    if (typeof header.alg !== "string" || !(ASYMMETRIC as readonly string[]).includes(header.alg)) return null;
    const local = this.localSet;
    const remote = this.remoteSet;
    if (local && remote) {
      // The file first; a key id it lacks is looked up at the URL.
      return async (h, t) => {
        try {
          return await local(h, t);
        } catch (err) {
          if (err instanceof errors.JWKSNoMatchingKey) return remote(h, t);
          throw err;
        }
      };
    }
    return local ?? remote;
  }
}

function readJwks(file: string): JSONWebKeySet {
  const jwks = JSON.parse(readFileSync(file, "utf8")) as JSONWebKeySet;
  if (!Array.isArray(jwks.keys)) throw new Error(`${file}: not a JWKS (no "keys" array)`);
  return jwks;
}

function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "the token has expired";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key matches the token's key id";
  if (err instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not accepted";
  if (err instanceof errors.JWTClaimValidationFailed) return `claim ${err.claim}: ${err.reason === "missing" ? "missing" : "not accepted"}`;
  if (err instanceof errors.JWKSTimeout) return "the key set could not be fetched in time";
  if (err instanceof errors.JOSEError) return "the token is not valid";
  return "the token is not valid";
}
