/**
 * Delivers the outbox: POSTs each due event to the shop's postback URL,
 * signed per Standard Webhooks, retrying on a schedule, and records every
 * attempt and the event's delivery state in SQLite (so a restart or a
 * kill -9 loses nothing).
 */
import { getMaxListeners, setMaxListeners } from "node:events";
import type { Dispatcher } from "undici";
import { fetch as undiciFetch } from "undici";
import type { Clock } from "../internal/clock.ts";
import { toUnixSeconds } from "../internal/clock.ts";
import { errorMessage } from "../internal/errors.ts";
import { parseRetryAfter } from "../internal/http.ts";
import type { Logger } from "../internal/logger.ts";
import type { Outbox } from "../payments/index.ts";
import type { EventRow } from "../store/storage.ts";
import { postbackBody } from "./body.ts";
import { classifyStatus, DEFAULT_JITTER, DEFAULT_RETRY_SCHEDULE_MS, nextStep } from "./schedule.ts";
import { signatureHeader } from "./sign.ts";
import { PostbackTargetError } from "./targets.ts";

export { postbackBody } from "./body.ts";
export { DEFAULT_RETRY_SCHEDULE_MS } from "./schedule.ts";
export { generateSecret, sign, signatureHeader } from "./sign.ts";
export { createTargetGuard, type TargetGuard } from "./targets.ts";

/** Bytes of a shop's response body we read (and then drop) at most. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/** How long an event whose attempt crashed (not failed: crashed) waits before the next try. */
const CRASH_COOLDOWN_MS = 5000;

/** The part of a fetch response the sender reads. */
export type PostbackResponse = {
  status: number;
  headers: { get(name: string): string | null };
  body: { getReader(): ReadableStreamDefaultReader<Uint8Array> } | null;
};

/** The HTTP client: undici's fetch in production; injectable for tests. */
export type PostbackFetch = (
  url: string,
  init: {
    method: "POST";
    headers: Record<string, string>;
    body: string;
    redirect: "manual";
    signal: AbortSignal;
    dispatcher?: Dispatcher;
  },
) => Promise<PostbackResponse>;

/**
 * Delivery attempts since start, by outcome: `delivered` (2xx), `retry`
 * (failed, another attempt is scheduled), `failed` (failed for good: the
 * schedule ran out or the shop answered 410), `crashed` (the attempt
 * threw before its outcome was recorded; the event stays due).
 */
export type PostbackStats = { delivered: number; retry: number; failed: number; crashed: number };

export type PostbackSender = {
  /** Delivers due events until `signal` aborts; in-flight attempts are abandoned, not recorded. */
  run(signal: AbortSignal): Promise<void>;
  /** New or re-queued events: look now rather than at the next idle poll. */
  wake(): void;
  /**
   * One step of the loop: starts the events due now (up to the concurrency)
   * and waits for them; returns how many. `run` repeats it; tests drive it
   * step by step under a clock they move.
   */
  deliverDue(): Promise<number>;
  /** Re-queues an event (event id) or a payment's events (payment id); returns their ids. */
  resend(id: string): Promise<string[]>;
  /** Attempts since start by outcome (metrics). */
  stats(): PostbackStats;
};

async function drain(response: PostbackResponse): Promise<void> {
  if (!response.body) return;
  const reader = response.body.getReader();
  let read = 0;
  try {
    while (read < MAX_RESPONSE_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** An abort signal for one attempt: fires on the timeout or when the sender stops. */
function attemptSignal(timeoutMs: number, stop: AbortSignal | undefined) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`timeout after ${timeoutMs} ms`));
  }, timeoutMs);
  const onStop = () => controller.abort(new Error("stopping"));
  stop?.addEventListener("abort", onStop, { once: true });
  if (stop?.aborted) onStop();
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    done() {
      clearTimeout(timer);
      stop?.removeEventListener("abort", onStop);
    },
  };
}

/** A failed fetch as one line: the guard's refusal, or the chain of causes ("fetch failed: connect ECONNREFUSED …"). */
function describeFailure(error: unknown): string {
  const messages: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    if (current instanceof PostbackTargetError) return current.message;
    messages.push(errorMessage(current));
    current = (current as { cause?: unknown }).cause;
  }
  return messages.join(": ");
}

/**
 * The sender loop. Delivery state is read from and written to the events
 * table on every step, never held only in memory, so any number of
 * restarts resumes exactly where the table says.
 */
/** A claim outlasts the attempt's timeout by this much (the database's round trips). */
const CLAIM_MARGIN_MS = 5_000;

export function createPostbackSender({
  outbox,
  clock,
  logger,
  decimals,
  timeoutMs,
  secrets = [],
  retrySchedule = DEFAULT_RETRY_SCHEDULE_MS,
  dispatcher,
  fetch: fetchFn = undiciFetch as unknown as PostbackFetch,
  concurrency = 8,
  idlePollMs = 1000,
  jitter = DEFAULT_JITTER,
  random = Math.random,
}: {
  outbox: Outbox;
  clock: Clock;
  logger: Logger;
  decimals: number;
  timeoutMs: number;
  /** Signing secrets, current first; empty: postbacks go unsigned (as the original's). */
  secrets?: readonly string[];
  /** Delays before attempts 2, 3, … in ms; after the last, the event is failed. */
  retrySchedule?: readonly number[];
  /** The SSRF guard's dispatcher. */
  dispatcher?: Dispatcher;
  fetch?: PostbackFetch;
  /** Attempts in flight at once, each for a different payment. */
  concurrency?: number;
  /** How long an idle sender waits before looking again (other processes may re-queue). */
  idlePollMs?: number;
  jitter?: number;
  random?: () => number;
}): PostbackSender {
  const log = logger.child({ module: "postbacks" });
  /** Attempts in flight, by payment: a payment's next event waits for its current one. */
  const inFlight = new Map<string, Promise<void>>();
  /** Events whose attempt crashed (e.g. the disk is full), not tried again before this time. */
  const cooldown = new Map<string, number>();
  const outcomes: PostbackStats = { delivered: 0, retry: 0, failed: 0, crashed: 0 };
  let stopSignal: AbortSignal | undefined;
  /** The stop signal whose listener limit this sender raised. */
  let raisedFor: AbortSignal | undefined;
  let notified = false;
  let notify: (() => void) | undefined;

  if (secrets.length === 0) {
    log.warn(
      "postbacks are NOT signed: set postbacks.secret (or OXBTCPAY_POSTBACK_SECRET) to a secret from `0xbtcpay secret` and verify the webhook-signature header in the shop",
    );
  }

  function wake() {
    notified = true;
    notify?.();
  }

  async function attempt(head: EventRow): Promise<void> {
    // NOTE: replicas on one PostgreSQL share the outbox: the event is
    // claimed (a lease longer than an attempt), and its row read again, so
    // an attempt another replica made meanwhile is seen (same body, same
    // webhook-id, the right round_attempts).
    const claimedAt = clock.now();
    const event = await outbox.claim(head.id, claimedAt, claimedAt + timeoutMs + CLAIM_MARGIN_MS);
    if (!event || event.next_attempt_at > claimedAt) return;
    let body = event.payload;
    if (body === null) {
      const context = await outbox.context(event);
      if (!context) return;
      body = postbackBody({ event, ...context, decimals });
      await outbox.setPayload(event.id, body);
    }
    const attemptedAt = clock.now();
    const timestamp = toUnixSeconds(attemptedAt);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": "0xbtcpay",
      "webhook-id": event.id,
      "webhook-timestamp": String(timestamp),
    };
    if (secrets.length > 0) {
      headers["webhook-signature"] = signatureHeader({ id: event.id, timestamp, body, secrets });
    }
    const stop = stopSignal;
    const abort = attemptSignal(timeoutMs, stop);
    let status: number | null = null;
    let error: string | null = null;
    let retryAfterMs: number | undefined;
    try {
      const response = await fetchFn(event.url, {
        method: "POST",
        headers,
        body,
        // A redirect could point anywhere, the shop's internal network included.
        redirect: "manual",
        signal: abort.signal,
        ...(dispatcher ? { dispatcher } : {}),
      });
      status = response.status;
      retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), clock.now());
      await drain(response).catch(() => {});
      if (classifyStatus(status) !== "delivered") {
        error =
          status >= 300 && status <= 399
            ? `HTTP ${status} (redirects are not followed)`
            : `HTTP ${status}`;
      }
    } catch (cause) {
      // Stopping: the attempt did not finish; the event stays due for the next start.
      if (stop?.aborted) return;
      error = abort.timedOut() ? `timeout after ${timeoutMs} ms` : describeFailure(cause);
    } finally {
      abort.done();
    }

    const finishedAt = clock.now();
    const roundAttempts = event.round_attempts + 1;
    const fields = {
      event_id: event.id,
      payment_id: event.payment_id,
      event_type: event.type,
      attempt: roundAttempts,
      status,
      duration_ms: finishedAt - attemptedAt,
    };
    const attempt = {
      event_id: event.id,
      attempted_at: attemptedAt,
      duration_ms: fields.duration_ms,
      status,
      error,
    };
    if (error === null) {
      await outbox.recordAttempt(attempt, {
        state: "delivered",
        round_attempts: event.round_attempts,
        next_attempt_at: event.next_attempt_at,
        delivered_at: finishedAt,
      });
      outcomes.delivered++;
      log.info(fields, "postback delivered");
      return;
    }
    const step =
      status !== null && classifyStatus(status) === "gone"
        ? ({ state: "failed" } as const)
        : nextStep({
            roundAttempts,
            schedule: retrySchedule,
            now: finishedAt,
            retryAfterMs,
            jitter,
            random,
          });
    await outbox.recordAttempt(attempt, {
      state: step.state,
      round_attempts: event.round_attempts,
      next_attempt_at: step.state === "pending" ? step.next_attempt_at : finishedAt,
      delivered_at: null,
    });
    outcomes[step.state === "pending" ? "retry" : "failed"]++;
    if (step.state === "pending") {
      log.warn(
        { ...fields, err: error, next_attempt_at: new Date(step.next_attempt_at).toISOString() },
        "postback failed, will retry",
      );
    } else {
      log.error({ ...fields, err: error }, "postback failed for good");
    }
  }

  /** Starts due events in free slots; returns them and when the next one is due. */
  async function fill(): Promise<{ started: Promise<void>[]; nextAt: number | undefined }> {
    const started: Promise<void>[] = [];
    const free = concurrency - inFlight.size;
    if (free <= 0) return { started, nextAt: undefined };
    const now = clock.now();
    let nextAt: number | undefined;
    // NOTE: at most inFlight.size heads are in flight, so this many rows hold
    // `free` startable ones (if there are) plus the next one due.
    for (const event of await outbox.pendingHeads(inFlight.size + free + 1)) {
      if (inFlight.has(event.payment_id)) continue;
      const dueAt = Math.max(event.next_attempt_at, cooldown.get(event.id) ?? 0);
      if (dueAt > now) {
        nextAt = Math.min(nextAt ?? dueAt, dueAt);
        // Rows come soonest due first: after one that is not due, none is.
        if (event.next_attempt_at > now) break;
        continue; // cooling down after a crash
      }
      if (inFlight.size >= concurrency) break;
      const running = attempt(event)
        .then(
          () => {
            cooldown.delete(event.id);
          },
          (error) => {
            // NOTE: the event stays pending and due; without a pause a broken
            // database would make this a tight loop of requests to the shop.
            cooldown.set(event.id, clock.now() + CRASH_COOLDOWN_MS);
            outcomes.crashed++;
            log.error({ event_id: event.id, err: errorMessage(error) }, "postback attempt crashed");
          },
        )
        .finally(() => {
          inFlight.delete(event.payment_id);
          wake();
        });
      inFlight.set(event.payment_id, running);
      started.push(running);
    }
    return { started, nextAt };
  }

  async function idle(ms: number, signal: AbortSignal): Promise<void> {
    if (notified) return;
    const controller = new AbortController();
    const stop = () => controller.abort();
    notify = stop;
    signal.addEventListener("abort", stop, { once: true });
    // A stop that came while the loop awaited the outbox: no wait.
    if (signal.aborted) stop();
    await clock.sleep(ms, controller.signal);
    signal.removeEventListener("abort", stop);
    notify = undefined;
  }

  return {
    wake,
    async deliverDue() {
      const { started } = await fill();
      await Promise.all(started);
      return started.length;
    },
    async resend(id) {
      const ids = await outbox.requeue(id, clock.now());
      if (ids.length > 0) {
        log.info({ id, event_ids: ids }, "postbacks re-queued");
        wake();
      }
      return ids;
    },
    stats: () => ({ ...outcomes }),
    async run(signal) {
      stopSignal = signal;
      // NOTE: each attempt in flight listens for the stop, and so do the
      // daemon's other tasks on the same signal: more than Node's default
      // of 10 by design, not a leak (each attempt removes its listener).
      // Once per signal, however often this sender runs on it.
      if (raisedFor !== signal) {
        raisedFor = signal;
        setMaxListeners(getMaxListeners(signal) + concurrency, signal);
      }
      while (!signal.aborted) {
        notified = false;
        let nextAt: number | undefined;
        try {
          nextAt = (await fill()).nextAt;
        } catch (error) {
          log.error({ err: errorMessage(error) }, "postback loop failed");
        }
        const wait = Math.min(idlePollMs, (nextAt ?? Number.POSITIVE_INFINITY) - clock.now());
        await idle(Math.max(0, wait), signal);
      }
      await Promise.allSettled(inFlight.values());
    },
  };
}
