/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/):
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
 * keyed with the base64-decoded part of a `whsec_` secret.
 */
import { createHmac, randomBytes } from "node:crypto";

export const SECRET_PREFIX = "whsec_";

/** Shortest key we accept, in bytes: the spec asks for 24 to 64. */
export const MIN_SECRET_BYTES = 24;
export const MAX_SECRET_BYTES = 64;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The key bytes of a `whsec_<base64>` secret, or undefined if it is malformed or too short. */
export function secretKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(encoded)) return undefined;
  const key = Buffer.from(encoded, "base64");
  return key.length >= MIN_SECRET_BYTES && key.length <= MAX_SECRET_BYTES ? key : undefined;
}

/** A new `whsec_` secret: 32 random bytes, base64. */
export function generateSecret(random: (size: number) => Buffer = randomBytes): string {
  return `${SECRET_PREFIX}${random(32).toString("base64")}`;
}

/**
 * One `v1,<base64>` signature of a message. Pure: the same id, timestamp
 * (UNIX seconds), body and secret always give the same value.
 */
export function sign({
  id,
  timestamp,
  body,
  secret,
}: {
  id: string;
  timestamp: number;
  body: string;
  secret: string;
}): string {
  const key = secretKey(secret);
  if (!key) throw new TypeError("not a whsec_ secret of 24 to 64 bytes");
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/**
 * The `webhook-signature` header value: one `v1,` signature per secret,
 * space-separated (the current secret first, then those being rotated out).
 */
export function signatureHeader({
  id,
  timestamp,
  body,
  secrets,
}: {
  id: string;
  timestamp: number;
  body: string;
  secrets: readonly string[];
}): string {
  return secrets.map((secret) => sign({ id, timestamp, body, secret })).join(" ");
}
