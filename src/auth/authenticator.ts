// Who may create a session: operator API keys, signed client tokens, or (open mode) anyone, counted by address.
import { CreateSessionRequest, type ErrorBody, ErrorCode, fieldPath } from "@agentwire/protocol";
import { type OperatorPolicy, type Principal, type QuotaLimits, limitsWith, modelAllowed } from "../engine/index.js";
import type { ApiKeys } from "./api-keys.js";
import type { JwtVerifier } from "./jwt.js";

/** True when `token` looks like a JWS compact serialization (three base64url parts), so it may be a client token. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

export type Authenticated = { ok: true; principal: Principal } | { ok: false; status: number; error: ErrorBody };

export interface AuthenticatorOptions {
  /** `none`: open mode, every client counts as its address. `required`: a key or a token on every create. */
  mode: "none" | "required";
  keys: ApiKeys | null;
  jwt: JwtVerifier | null;
  /** Per-identity limits unless a token or key holder overrides them. */
  defaults: QuotaLimits;
  /** Models the operator allows: a pinned model must be one. */
  allowedModels: OperatorPolicy["allowedModels"];
}

const unauthorized = (message: string, field?: string): Authenticated => ({ ok: false, status: 401, error: { code: ErrorCode.Unauthorized, message, field, retryable: false } });
const forbidden = (message: string, field: string): Authenticated => ({ ok: false, status: 403, error: { code: ErrorCode.Forbidden, message, field, retryable: false } });

export class Authenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  get mode(): "none" | "required" {
    return this.options.mode;
  }

  /**
   * The principal for a `POST /v1/sessions` with `bearer` (the `Authorization: Bearer` value) and `body`
   * (parsed JSON, or undefined for none) from `clientAddress`. JWTs are verified here, once per session.
   */
  async authenticate(bearer: string | undefined, body: unknown, clientAddress: string): Promise<Authenticated> {
    const { mode, keys, jwt, defaults } = this.options;
    const hasBody = body !== undefined && !(typeof body === "object" && body !== null && Object.keys(body).length === 0);
    // Open mode with no credential configured: a bearer (say, a client's leftover token) means nothing here.
    if (mode === "none" && (bearer === undefined || (!keys && !jwt?.configured))) {
      if (hasBody) return forbidden("a create body is taken only with an operator API key", "body");
      return { ok: true, principal: { identity: `ip:${clientAddress}`, limits: defaults } };
    }
    if (bearer === undefined || bearer === "") return unauthorized("send an API key or a client token: Authorization: Bearer <credential>");
    // An API key may look like a JWT (dots in it): the key set answers for it first.
    const name = keys?.verify(bearer) ?? null;
    if (name === null && jwt?.configured && looksLikeJwt(bearer)) {
      if (hasBody) return forbidden("a client token carries its settings as claims: send no body", "body");
      const verified = await jwt.verify(bearer);
      if (!verified.ok) return unauthorized(verified.message, verified.field);
      const { sub, model, system, tools, limits } = verified.claims;
      return this.principal(`jwt:${sub}`, { model, system, tools, limits });
    }
    if (name === null) {
      // A wrong credential is refused, in open mode too: never silently downgraded to an address identity.
      return unauthorized("the credential is not a valid API key or client token");
    }
    const parsed = CreateSessionRequest.safeParse(body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return { ok: false, status: 400, error: { code: ErrorCode.InvalidMessage, message: issue?.message ?? "invalid body", field: issue ? fieldPath(issue) : undefined, retryable: false } };
    }
    const { user, ...settings } = parsed.data;
    return this.principal(user === undefined ? `key:${name}` : `key:${name}/${user}`, settings);
  }

  private principal(identity: string, settings: Omit<CreateSessionRequest, "user">): Authenticated {
    const { allowedModels, defaults } = this.options;
    if (settings.model !== undefined && !modelAllowed(allowedModels, settings.model)) {
      return forbidden(`model "${settings.model}" is not one the operator allows`, "model");
    }
    const principal: Principal = { identity, limits: limitsWith(defaults, settings.limits) };
    if (settings.model !== undefined) principal.model = settings.model;
    if (settings.system !== undefined) principal.system = settings.system;
    if (settings.tools !== undefined) principal.tools = settings.tools;
    return { ok: true, principal };
  }
}
