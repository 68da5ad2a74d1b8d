/**
 * The deadline sweep: when an open payment's deadline passes, the lifecycle
 * is applied to it in a transaction (it expires unless its amount arrived
 * in time). A timer waits for the nearest deadline; at start, one sweep
 * catches up with the deadlines that passed while the daemon was down.
 */
import type { Clock } from "../internal/clock.ts";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { PaymentQueries } from "../store/storage.ts";
import type { ChangeFeed } from "./changes.ts";
import type { Transitions } from "./transitions.ts";

/** Longest single wait: deadlines written by another process are noticed this late at worst. */
const MAX_WAIT_MS = 60_000;
/** Pause after a failed sweep (e.g. the disk is full) before the next try. */
const RETRY_AFTER_FAILURE_MS = 5_000;

export type DeadlineSweep = {
  /** Applies every deadline due now, in one transaction; returns how many events it queued. */
  sweep(): Promise<number>;
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

  const sweepDue = changes.transaction(async (): Promise<number> => {
    const now = clock.now();
    const heads = await store.heads();
    let queued = 0;
    // A fully received payment still confirming stays open: its row comes
    // back on each sweep until it is paid, and the confirming set re-decides it.
    for (const payment of await store.dueDeadlines(now))
      queued += await transitions.apply(payment.id, heads, now);
    return queued;
  });

  async function sweep(): Promise<number> {
    const queued = await sweepDue();
    if (queued > 0) onEvents();
    return queued;
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
          await sweep();
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
