/**
 * Optional API keys for the private port: `Authorization: Bearer <key>`.
 * The config holds only a hash of each key (sha256 or scrypt) and the
 * permissions it grants; keys are compared in constant time.
 */
import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from "node:crypto";

/** What a key may do; each JSON-RPC method needs exactly one of these. */
export const PERMISSIONS = [
  "payments:create",
  "payments:read",
  "payments:cancel",
  "postbacks:resend",
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/** Whether `value` is one of {@link PERMISSIONS}. */
export function isPermission(value: unknown): value is Permission {
  return (PERMISSIONS as readonly unknown[]).includes(value);
}

/** Prefix of generated keys, so a leaked one is easy to recognise (and to grep for). */
export const API_KEY_PREFIX = "oxk_";

/** Longest Bearer token looked at; longer ones are refused without hashing. */
export const MAX_KEY_LENGTH = 256;

/** One `private.apiKeys` entry of the config. */
export type ApiKeyEntry = {
  name: string;
  /** "sha256:<64 hex>" or "scrypt:<N>:<r>:<p>:<salt base64url>:<hash base64url>". */
  hash: string;
  permissions: readonly Permission[];
};

/** The key that authorized a request. */
export type ApiKey = { name: string; permissions: ReadonlySet<Permission> };

export type KeyHash =
  | { kind: "sha256"; digest: Buffer }
  | { kind: "scrypt"; N: number; r: number; p: number; salt: Buffer; digest: Buffer };

/** scrypt cost used by `hashApiKey` (about 50 ms and 16 MiB per check). */
export const SCRYPT_DEFAULTS = { N: 16_384, r: 8, p: 1 } as const;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Parses a stored key hash; undefined if it is not one of the two formats. */
export function parseKeyHash(text: string): KeyHash | undefined {
  const parts = text.split(":");
  if (parts[0] === "sha256" && parts.length === 2 && /^[0-9a-f]{64}$/.test(parts[1] ?? "")) {
    return { kind: "sha256", digest: Buffer.from(parts[1] ?? "", "hex") };
  }
  if (parts[0] === "scrypt" && parts.length === 6) {
    const [, nText = "", rText = "", pText = "", saltText = "", digestText = ""] = parts;
    if (![nText, rText, pText].every((n) => /^[0-9]{1,7}$/.test(n))) return undefined;
    const [N, r, p] = [Number(nText), Number(rText), Number(pText)];
    // NOTE: bounded so a config typo cannot make every request cost seconds or gigabytes.
    const powerOfTwo = N >= 2 && (N & (N - 1)) === 0;
    if (!powerOfTwo || N > 2 ** 20 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
    if (!BASE64URL.test(saltText) || !BASE64URL.test(digestText)) return undefined;
    const salt = Buffer.from(saltText, "base64url");
    const digest = Buffer.from(digestText, "base64url");
    if (salt.length < 8 || digest.length < 16 || digest.length > 64) return undefined;
    return { kind: "scrypt", N, r, p, salt, digest };
  }
  return undefined;
}

/** A new random key: `oxk_` + 32 random bytes in base64url. Shown once, never stored. */
export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest();

const scryptMaxmem = (N: number, r: number) => 256 * N * r + 1024 * 1024;

/**
 * The config form of `key`'s hash. sha256 is enough for generated keys (256
 * random bits); scrypt is for keys a person chose.
 */
export function hashApiKey(key: string, algorithm: "sha256" | "scrypt" = "sha256"): string {
  if (algorithm === "sha256") return `sha256:${sha256(key).toString("hex")}`;
  const { N, r, p } = SCRYPT_DEFAULTS;
  const salt = randomBytes(16);
  const digest = scryptSync(key, salt, 32, { N, r, p, maxmem: scryptMaxmem(N, r) });
  return `scrypt:${N}:${r}:${p}:${salt.toString("base64url")}:${digest.toString("base64url")}`;
}

function scryptAsync(key: string, hash: Extract<KeyHash, { kind: "scrypt" }>): Promise<Buffer> {
  const { N, r, p, salt, digest } = hash;
  return new Promise((resolve, reject) => {
    scrypt(key, salt, digest.length, { N, r, p, maxmem: scryptMaxmem(N, r) }, (error, out) =>
      error ? reject(error) : resolve(out),
    );
  });
}

export type Authentication =
  | { ok: true; key: ApiKey }
  | { ok: false; reason: "missing API key" | "invalid API key" };

export type ApiKeyVerifier = {
  /** Whether any key is configured; if not, the private port is IP-only (the original rule). */
  enabled: boolean;
  /** Checks an `Authorization` header value. */
  verify(authorization: string | undefined): Promise<Authentication>;
};

/** Keys whose scrypt check succeeded, by sha256 of the key, so scrypt runs once per key. */
const SCRYPT_CACHE_SIZE = 64;

/**
 * Builds the checker for the configured keys. Entries are validated at
 * config load; an unparsable hash here is a programming error and throws.
 */
export function createApiKeyVerifier({
  entries,
}: {
  entries: readonly ApiKeyEntry[];
}): ApiKeyVerifier {
  const keys = entries.map((entry) => {
    const hash = parseKeyHash(entry.hash);
    if (!hash) throw new Error(`invalid API key hash for ${entry.name}`);
    return { key: { name: entry.name, permissions: new Set(entry.permissions) }, hash };
  });
  const scryptVerified = new Map<string, ApiKey>();

  return {
    enabled: keys.length > 0,
    async verify(authorization) {
      const match = /^Bearer +(\S+) *$/i.exec(authorization ?? "");
      const token = match?.[1];
      if (token === undefined) return { ok: false, reason: "missing API key" };
      if (token.length > MAX_KEY_LENGTH) return { ok: false, reason: "invalid API key" };
      const digest = sha256(token);
      // Compare against every sha256 entry, without stopping at the first match.
      let found: ApiKey | undefined;
      for (const { key, hash } of keys) {
        if (hash.kind === "sha256" && timingSafeEqual(digest, hash.digest) && !found) found = key;
      }
      if (found) return { ok: true, key: found };
      const cacheKey = digest.toString("hex");
      const cached = scryptVerified.get(cacheKey);
      if (cached) return { ok: true, key: cached };
      for (const { key, hash } of keys) {
        if (hash.kind !== "scrypt") continue;
        const derived = await scryptAsync(token, hash);
        if (timingSafeEqual(derived, hash.digest)) {
          if (scryptVerified.size >= SCRYPT_CACHE_SIZE) scryptVerified.clear();
          scryptVerified.set(cacheKey, key);
          return { ok: true, key };
        }
      }
      return { ok: false, reason: "invalid API key" };
    },
  };
}
