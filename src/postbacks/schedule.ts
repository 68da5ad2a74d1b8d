/**
 * When to try a postback again: the retry schedule, jitter, Retry-After,
 * and which answers are final. Pure functions of their inputs.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * Delays before attempts 2, 3, … (the first attempt is immediate), in ms:
 * 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h. That is ten
 * attempts over about three days, as Standard Webhooks senders do.
 */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  14 * HOUR,
  20 * HOUR,
  24 * HOUR,
];

/** Each delay is moved by up to ±20 %, so postbacks failed together do not retry together. */
export const DEFAULT_JITTER = 0.2;

/** What an HTTP answer means for the event. */
export type AnswerKind = "delivered" | "gone" | "retry";

/**
 * 2xx is delivered. 410 Gone means the shop does not want this event: stop.
 * Everything else (3xx, which is never followed, 4xx, 5xx) is retried.
 */
export function classifyStatus(status: number): AnswerKind {
  if (status >= 200 && status <= 299) return "delivered";
  if (status === 410) return "gone";
  return "retry";
}

/** A delay moved at random by up to ±`jitter` of itself; `random` returns [0, 1). */
export function withJitter(delayMs: number, jitter: number, random: () => number): number {
  return Math.round(delayMs * (1 + jitter * (2 * random() - 1)));
}

export type NextStep = { state: "pending"; next_attempt_at: number } | { state: "failed" };

/**
 * After a failed attempt, the `roundAttempts`-th since the event was
 * queued: the next attempt time, or `failed` once the schedule is used up.
 * A Retry-After longer than the scheduled delay wins.
 */
export function nextStep({
  roundAttempts,
  schedule,
  now,
  retryAfterMs,
  jitter = DEFAULT_JITTER,
  random = Math.random,
}: {
  roundAttempts: number;
  schedule: readonly number[];
  now: number;
  retryAfterMs?: number | undefined;
  jitter?: number;
  random?: () => number;
}): NextStep {
  const delay = schedule[roundAttempts - 1];
  if (delay === undefined) return { state: "failed" };
  const wait = Math.max(withJitter(delay, jitter, random), retryAfterMs ?? 0);
  return { state: "pending", next_attempt_at: now + wait };
}
