/**
 * HTTP details the daemon's clients share (the postback sender, the chain
 * provider's client), one implementation for both.
 */

const SECOND = 1000;

/** Longest delay {@link parseRetryAfter} gives unless told otherwise: a day. */
export const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * SECOND;

/**
 * The delay a `Retry-After` header asks for, in ms: delta-seconds ("120")
 * or an HTTP-date counted from `now` (RFC 9110 §10.2.3). Undefined if
 * absent or unreadable; a date in the past is 0; a longer delay is cut to
 * `maxMs`.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number,
  maxMs: number = MAX_RETRY_AFTER_MS,
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^[0-9]{1,10}$/.test(text)) {
    ms = Number(text) * SECOND;
  } else {
    // NOTE: only the IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT") and
    // its obsolete variants have a weekday and "GMT"; Date.parse also takes
    // ISO strings, which a server has no business sending here.
    if (!/GMT$/.test(text)) return undefined;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), maxMs);
}
