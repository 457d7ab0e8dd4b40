// Operator API keys: named secrets for server-to-server session creation, kept and compared only as SHA-256 digests.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, unwatchFile, watchFile } from "node:fs";

/** One key as the server keeps it: its name (the identity) and the digest of its secret. */
export interface ApiKey {
  name: string;
  digest: Buffer;
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const DIGEST = /^sha256:([0-9a-f]{64})$/i;

export function digestOf(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** A new random key and the line that configures it (only the digest needs to be stored). */
export function newApiKey(name: string): { key: string; line: string } {
  if (!NAME.test(name)) throw new Error(`key name "${name}" must be 1-64 of A-Z a-z 0-9 _ . -`);
  const key = `awk_${randomBytes(24).toString("base64url")}`;
  return { key, line: `${name}=sha256:${digestOf(key).toString("hex")}` };
}

/**
 * Parses key entries, `name=secret` or `name=sha256:<64 hex>` (the digest of the secret), separated by commas or
 * lines; `#` at the start of a line or after a space starts a comment. Secrets given in the clear are digested at once. Throws naming the bad entry.
 */
export function parseApiKeys(text: string, where: string): ApiKey[] {
  const keys: ApiKey[] = [];
  const names = new Set<string>();
  // A comment starts a line or follows a space: a `#` inside a secret is part of it.
  const entries = text.split(/[\n,]/).map((line) => line.replace(/(^|\s)#.*$/, "").trim());
  entries.forEach((entry, i) => {
    if (entry === "") return;
    const eq = entry.indexOf("=");
    const name = eq > 0 ? entry.slice(0, eq).trim() : "";
    const value = eq > 0 ? entry.slice(eq + 1).trim() : "";
    if (!NAME.test(name) || value === "") throw new Error(`${where}: entry ${i + 1} must be name=secret or name=sha256:<hex>`);
    if (names.has(name)) throw new Error(`${where}: key name "${name}" appears twice`);
    names.add(name);
    const digest = DIGEST.exec(value);
    if (!digest && value.length < 16) throw new Error(`${where}: the secret of "${name}" is shorter than 16 characters`);
    keys.push({ name, digest: digest ? Buffer.from(digest[1] as string, "hex") : digestOf(value) });
  });
  return keys;
}

/**
 * The key set: from the environment, plus a file that is read again on `reload()` (SIGHUP) and when it changes.
 * A file that cannot be read or parsed keeps the previous keys and is reported, so a bad edit locks nobody out.
 */
export class ApiKeys {
  private fromEnv: ApiKey[];
  private fromFile: ApiKey[] = [];
  private watching = false;

  constructor(
    envValue: string,
    private readonly file: string | undefined,
    private readonly report: (problem: string | null, count: number) => void = () => {},
  ) {
    this.fromEnv = parseApiKeys(envValue, "AGENTWIRE_API_KEYS");
    if (file) this.fromFile = parseApiKeys(readFileSync(file, "utf8"), file);
  }

  get size(): number {
    return this.fromEnv.length + this.fromFile.length;
  }

  /** Reads the file again; true when it took effect. */
  reload(): boolean {
    if (!this.file) return false;
    try {
      this.fromFile = parseApiKeys(readFileSync(this.file, "utf8"), this.file);
      this.report(null, this.size);
      return true;
    } catch (err) {
      this.report((err as Error).message, this.size);
      return false;
    }
  }

  /** Reloads when the file's modification time or size changes (polled: works across editors' rename-on-save). */
  watch(intervalMs: number): void {
    if (!this.file || this.watching) return;
    this.watching = true;
    watchFile(this.file, { interval: intervalMs, persistent: false }, (now, before) => {
      if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) this.reload();
    });
  }

  close(): void {
    if (this.file && this.watching) unwatchFile(this.file);
    this.watching = false;
  }

  /** The name of the key `secret` is, or null. Every key is compared, in constant time each: no early exit. */
  verify(secret: string): string | null {
    const digest = digestOf(secret);
    let found: string | null = null;
    for (const key of this.fromEnv.concat(this.fromFile)) {
      if (timingSafeEqual(key.digest, digest) && found === null) found = key.name;
    }
    return found;
  }
}
