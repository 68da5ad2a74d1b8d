/**
 * A per-client fixed-window request counter for the public port. Memory is
 * bounded: counters live for one window only, and at most `maxClients` are
 * tracked per window.
 */
import { parseIp } from "../internal/allowlist.ts";

export type RateLimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export type RateLimiter = {
  /** Counts one request from `client` (an IP address) and decides. */
  hit(client: string | undefined): RateLimitDecision;
  /** False when `max` is 0: callers may skip working out the client. */
  enabled: boolean;
  /** Clients tracked in the current window (for tests and metrics). */
  size(): number;
};

/** Clients tracked per window by default: about 10 MB at most. */
export const DEFAULT_MAX_CLIENTS = 100_000;

/**
 * The counter's key: the IPv4 address, or the /64 of an IPv6 address (one
 * host usually gets a whole /64, so counting single IPv6 addresses would be
 * no limit at all).
 */
export function clientKey(client: string | undefined): string {
  if (client === undefined) return "unknown";
  const address = parseIp(client);
  if (!address) return "unknown";
  if (address.kind() === "ipv4") return address.toString();
  const parts = address.toByteArray().slice(0, 8);
  return `${Buffer.from(parts).toString("hex")}/64`;
}

/**
 * Allows `max` requests per client in each window of `windowMs` (windows are
 * aligned to the clock, so a client may get up to 2·max across a boundary).
 * `max` 0 turns the limit off. When `maxClients` are tracked, new clients
 * pass uncounted until the window ends: an attacker with that many addresses
 * is beyond a per-IP limit anyway, and shoppers are never refused for it.
 */
export function createRateLimiter({
  windowMs,
  max,
  now,
  maxClients = DEFAULT_MAX_CLIENTS,
}: {
  windowMs: number;
  max: number;
  now: () => number;
  maxClients?: number;
}): RateLimiter {
  let windowStart = Number.NEGATIVE_INFINITY;
  let counts = new Map<string, number>();
  return {
    enabled: max > 0,
    hit(client) {
      if (max === 0) return { allowed: true };
      const time = now();
      const start = time - (time % windowMs);
      if (start !== windowStart) {
        // NOTE: pruning is dropping the whole previous window: O(1), nothing lingers.
        windowStart = start;
        counts = new Map();
      }
      const key = clientKey(client);
      const count = counts.get(key);
      if (count === undefined) {
        if (counts.size >= maxClients) return { allowed: true };
        counts.set(key, 1);
        return { allowed: true };
      }
      if (count >= max) {
        return {
          allowed: false,
          retryAfterSeconds: Math.max(1, Math.ceil((start + windowMs - time) / 1000)),
        };
      }
      counts.set(key, count + 1);
      return { allowed: true };
    },
    size: () => counts.size,
  };
}
