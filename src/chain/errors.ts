/**
 * Reads what an RPC provider meant by an error: "your eth_getLogs range is too
 * large (try this one)", "slow down", or anything else. Providers word these
 * differently; the patterns below are their actual messages.
 */
import { parseRetryAfter } from "../internal/http.ts";

export type ProviderErrorKind =
  | {
      kind: "range" /** A range size the provider says works, if it says one. */;
      suggestedSize?: number;
    }
  | { kind: "rate" /** From Retry-After, if sent. */; retryAfterMs?: number }
  | { kind: "other" };

type Inspected = { messages: string[]; codes: number[]; statuses: number[]; retryAfter?: string };

/** Collects messages, JSON-RPC codes, HTTP statuses and Retry-After along the cause chain. */
function inspect(error: unknown): Inspected {
  const out: Inspected = { messages: [], codes: [], statuses: [] };
  let current: unknown = error;
  for (let depth = 0; current && depth < 10; depth++) {
    const e = current as {
      message?: unknown;
      details?: unknown;
      shortMessage?: unknown;
      code?: unknown;
      status?: unknown;
      headers?: { get?(name: string): string | null };
      cause?: unknown;
    };
    for (const text of [e.details, e.shortMessage, e.message]) {
      if (typeof text === "string") out.messages.push(text);
    }
    if (typeof e.code === "number") out.codes.push(e.code);
    if (typeof e.status === "number") out.statuses.push(e.status);
    const retryAfter = typeof e.headers?.get === "function" ? e.headers.get("retry-after") : null;
    if (retryAfter && out.retryAfter === undefined) out.retryAfter = retryAfter;
    current = e.cause;
  }
  return out;
}

/**
 * Longest wait a provider's Retry-After gets. NOTE: the watcher waits with a
 * timer, and a timer longer than 2^31 − 1 ms (about 24.8 days) fires at once.
 */
export const MAX_PROVIDER_RETRY_AFTER_MS = 2 ** 31 - 1;

const hexRange = /\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]/i;

/** The range size a provider's message suggests, for a request starting at `fromBlock`. */
function suggestedSize(message: string, fromBlock: number): number | undefined {
  // Infura: "query returned more than 10000 results. Try with this block range [0x…, 0x…]."
  // Alchemy: "… this block range should work: [0x…, 0x…]"
  const hex = hexRange.exec(message);
  if (hex?.[1] && hex[2]) {
    const start = Number.parseInt(hex[1], 16);
    const end = Number.parseInt(hex[2], 16);
    if (end >= start) return end - Math.max(start, fromBlock) + 1;
  }
  // llamarpc: "query exceeds max results 20000, retry with the range 100-150"
  const dec = /retry with the range (\d+)\s*-\s*(\d+)/i.exec(message);
  if (dec?.[1] && dec[2]) {
    const start = Number(dec[1]);
    const end = Number(dec[2]);
    if (end >= start) return end - Math.max(start, fromBlock) + 1;
  }
  // QuickNode: "eth_getLogs is limited to a 10,000 range"
  const quicknode = /limited to a ([\d,]+) range/i.exec(message);
  if (quicknode?.[1]) return Number(quicknode[1].replaceAll(",", ""));
  // PublicNode: "exceed maximum block range: 50000"
  const publicnode = /maximum block range:?\s*([\d,]+)/i.exec(message);
  if (publicnode?.[1]) return Number(publicnode[1].replaceAll(",", ""));
  return undefined;
}

const RANGE_PATTERNS = [
  /query returned more than \d+ results/i,
  /this block range should work/i,
  /limited to a [\d,]+ range/i,
  /exceed(s|ed)? maximum block range/i,
  /query exceeds max results/i,
  /block range (is )?too (large|wide)/i,
  /range (is )?too large/i,
  /too many (results|logs|blocks)/i,
  /response size (is )?(larger|exceeded|too large)/i,
  /log response size exceeded/i,
];

/**
 * Classifies a failed eth_getLogs (or any) call. `fromBlock` anchors a
 * suggested range to the request's start.
 */
export function classifyProviderError(
  error: unknown,
  { fromBlock = 0, now = Date.now() }: { fromBlock?: number; now?: number } = {},
): ProviderErrorKind {
  const { messages, codes, statuses, retryAfter } = inspect(error);
  for (const message of messages) {
    if (RANGE_PATTERNS.some((pattern) => pattern.test(message))) {
      const size = suggestedSize(message, fromBlock);
      return size !== undefined && size > 0
        ? { kind: "range", suggestedSize: size }
        : { kind: "range" };
    }
  }
  const rateLimited =
    statuses.includes(429) ||
    codes.includes(-32005) ||
    codes.includes(429) ||
    messages.some((m) => /rate limit|too many requests|exceeded .*(capacity|quota)/i.test(m));
  if (rateLimited) {
    const ms = parseRetryAfter(retryAfter, now, MAX_PROVIDER_RETRY_AFTER_MS);
    return ms === undefined ? { kind: "rate" } : { kind: "rate", retryAfterMs: ms };
  }
  return { kind: "other" };
}
