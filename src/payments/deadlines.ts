/**
 * The deadline sweep: when an open payment's deadline passes, the lifecycle
 * is applied to it in a transaction (it expires unless its amount arrived
 * in time). A timer waits for the nearest deadline; at start, one sweep
 * catches up with the deadlines that passed while the daemon was down.
 *
 * A sweep works off what is due in batches of at most {@link SWEEP_BATCH}
 * payments and {@link SWEEP_SLICE_MS}, oldest deadline first, one
 * transaction each, and after each batch leaves the event loop to
 * everything else for twice as long as the batch took: a backlog of any
 * size (a daemon that was down for a day during a sale comes back to tens
 * of thousands of overdue payments) takes at most a third of the process
 * and holds the database (on SQLite, the one connection) for one batch at a
 * time, so both ports keep answering, and memory holds one batch of rows.
 */
import type { Clock } from "../internal/clock.ts";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { DeadlinePage, PaymentQueries } from "../store/storage.ts";
import type { ChangeFeed } from "./changes.ts";
import type { Transitions } from "./transitions.ts";

/** Longest single wait: deadlines written by another process are noticed this late at worst. */
const MAX_WAIT_MS = 60_000;
/** Pause after a failed sweep (e.g. the disk is full) before the next try. */
const RETRY_AFTER_FAILURE_MS = 5_000;
/** Payments re-decided per transaction of a sweep, at most. */
export const SWEEP_BATCH = 100;
/**
 * How long one batch may hold the process: it commits what it has
 * re-decided by then (one payment at least), and the next batch starts
 * there. A sweep at start runs on code not yet compiled, several times
 * slower than later: its batches are smaller, not longer.
 */
export const SWEEP_SLICE_MS = 5;

export type DeadlineSweep = {
  /**
   * Applies every deadline due now, a batch per transaction; returns how
   * many events it queued. With `signal`, stops between two batches once
   * it aborts.
   */
  sweep(signal?: AbortSignal): Promise<number>;
  /** Sweeps at each deadline until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** A payment with deadline `at` was created: wake earlier if it is the nearest. */
  deadlineAdded(at: number): void;
};

export function createDeadlineSweep({
  store,
  transitions,
  changes,
  clock,
  logger,
  onEvents,
}: {
  store: PaymentQueries;
  transitions: Transitions;
  changes: ChangeFeed;
  clock: Clock;
  logger: Logger;
  /** Called after a sweep that queued postback events. */
  onEvents: () => void;
}): DeadlineSweep {
  const log = logger.child({ module: "payments" });
  let wakeAt = Number.POSITIVE_INFINITY;
  let wake: (() => void) | undefined;

  /** Re-decides one batch of what is due at `now`; the last row tells where the next starts. */
  const sweepBatch = changes.transaction(
    async (
      now: number,
      after: DeadlinePage["after"],
    ): Promise<{
      /** Whether this batch re-decided the last payment due. */
      done: boolean;
      queued: number;
      expired: string[];
      last: DeadlinePage["after"];
    }> => {
      const began = performance.now();
      const heads = await store.heads();
      const due = await store.dueDeadlines(now, { limit: SWEEP_BATCH, after });
      let queued = 0;
      const expired: string[] = [];
      let taken = 0;
      for (const payment of due) {
        queued += await transitions.apply(payment.id, heads, now, expired);
        taken++;
        if (performance.now() - began >= SWEEP_SLICE_MS) break;
      }
      const last = due[taken - 1];
      return {
        done: taken === due.length && due.length < SWEEP_BATCH,
        queued,
        expired,
        last: last && { expires_at: last.expires_at, id: last.id },
      };
    },
  );

  async function sweep(signal?: AbortSignal): Promise<number> {
    // NOTE: one `now` for the whole sweep, so it ends: what falls due while
    // it runs is the next sweep's. A fully received payment still
    // confirming stays open; the page position passes over it, and the
    // confirming set re-decides it at each new head.
    const now = clock.now();
    let after: DeadlinePage["after"];
    let queued = 0;
    for (;;) {
      const began = performance.now();
      const batch = await sweepBatch(now, after);
      // One line a batch, once committed: a grep for a payment id still finds it.
      if (batch.expired.length > 0) {
        log.info(
          { payment_ids: batch.expired, count: batch.expired.length, to: "expired" },
          "payments expired",
        );
      }
      queued += batch.queued;
      if (batch.queued > 0) onEvents();
      if (batch.done || signal?.aborted) return queued;
      after = batch.last;
      // Whatever waits for the database or the event loop goes first, for
      // twice as long as the batch held them. NOTE: real time, not the clock's:
      // this shares the process, it waits for no deadline.
      const spent = performance.now() - began;
      await new Promise<void>((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(2 * spent))));
    }
  }

  return {
    sweep,
    deadlineAdded(at) {
      if (at < wakeAt) wake?.();
    },
    async run(signal) {
      while (!signal.aborted) {
        let wait = MAX_WAIT_MS;
        try {
          await sweep(signal);
          const next = await store.nextDeadline(clock.now());
          if (next !== undefined) wait = Math.min(wait, Math.max(0, next - clock.now()));
        } catch (error) {
          log.error({ err: errorMessage(error) }, "deadline sweep failed");
          wait = RETRY_AFTER_FAILURE_MS;
        }
        const controller = new AbortController();
        const stop = () => controller.abort();
        signal.addEventListener("abort", stop, { once: true });
        // NOTE: the stop may have come during the (asynchronous) sweep,
        // before the listener: then this wait is over at once.
        if (signal.aborted) stop();
        wakeAt = clock.now() + wait;
        wake = stop;
        await clock.sleep(wait, controller.signal);
        wake = undefined;
        wakeAt = Number.POSITIVE_INFINITY;
        signal.removeEventListener("abort", stop);
      }
    },
  };
}
