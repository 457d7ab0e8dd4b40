// The core of a backend endpoint that lets a signed-in user's browser talk to agentwire directly:
// mint a short-lived client token (HS256, the secret shared with the server as AGENTWIRE_JWT_SECRET).
// The browser passes it to `new AgentwireClient({ url, getToken })`; agentwire verifies it once, when
// the session is created, and counts the session, its links, turns and tokens against `sub`.
import { SignJWT } from "jose";

export interface SignedInUser {
  id: string;
  plan: "free" | "pro";
}

export function mintClientToken(secret: string, user: SignedInUser): Promise<string> {
  return (
    new SignJWT({
      // Optional claims; each narrows what the session may do, except `limits`, which you set per plan.
      system: "You are the support assistant of Example Inc. Answer briefly.",
      limits: user.plan === "pro" ? { tokens_per_day: 2_000_000, turns: 10 } : { tokens_per_day: 100_000, turns: 2 },
      // model: "gpt-4.1-mini",   pins the model (it must be in AGENTWIRE_ALLOWED_MODELS when that is set)
      // tools: ["lookup_order"], the only tools the session may use
    })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(user.id)
      .setIssuedAt()
      // Long enough to create a session; the session then lives on its own token.
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret))
  );
}
