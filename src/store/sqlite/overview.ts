/**
 * What `0xbtcpay status` shows, read from stored values with the indexes
 * that exist for them: payments by status, the postback queue, the last
 * delivery error.
 *
 * Cost with 1,000,000 payments, events and attempts, measured on the
 * development VM (loaded, page cache warm): the five status counts 20–40 ms
 * each (ranges of the covering index payments_by_status, no table scan);
 * the pending queue through the partial index events_due (as cheap as the
 * queue is short); the failed count is one pass over `events` and the last
 * error a backward walk of `postback_attempts` until an error (the whole
 * table when there is none): 0.1–0.3 s each warm, a few seconds cold. Fine
 * for an operator's command, not for a metrics scrape.
 */

import type { PaymentStatus } from "../storage.ts";
import type { Db } from "./index.ts";

export type PostbackQueue = {
  /** Events still to be delivered (retrying or due). */
  pending: number;
  /** Events given up on (retry schedule exhausted, or the shop answered 410). */
  failed: number;
  /** created_at (UNIX ms) of the oldest pending or failed event; null: none. */
  oldestUndeliveredAt: number | null;
};

export type LastPostbackError = {
  eventId: string;
  paymentId: string;
  attemptedAt: number;
  status: number | null;
  error: string;
};

export type Overview = ReturnType<typeof createOverview>;

/**
 * One status's count. NOTE: `status = ?`, so each count is a range of the
 * covering index payments_by_status; GROUP BY status would walk all of it.
 */
export const COUNT_BY_STATUS_SQL = "SELECT count(*) FROM payments WHERE status = ?";

export function createOverview(db: Db) {
  const statements = {
    countByStatus: db.prepare(COUNT_BY_STATUS_SQL).pluck(),
    // Matches the partial index events_due (WHERE state = 'pending').
    pending: db.prepare(
      "SELECT count(*) AS n, min(created_at) AS oldest FROM events WHERE state = 'pending'",
    ),
    failed: db.prepare(
      "SELECT count(*) AS n, min(created_at) AS oldest FROM events WHERE state = 'failed'",
    ),
    // NOTE: a backward walk of the rowid until the first error; the event's
    // payment is looked up after (a join here makes SQLite visit every row).
    lastError: db.prepare(`SELECT event_id, attempted_at, status, error FROM postback_attempts
      WHERE error IS NOT NULL ORDER BY id DESC LIMIT 1`),
    paymentOfEvent: db.prepare("SELECT payment_id FROM events WHERE id = ?").pluck(),
  };

  return {
    /** How many payments are in each of `statuses`. */
    paymentsByStatus<S extends PaymentStatus>(statuses: readonly S[]): Record<S, number> {
      const counts = {} as Record<S, number>;
      for (const status of statuses)
        counts[status] = statements.countByStatus.get(status) as number;
      return counts;
    },
    postbackQueue(): PostbackQueue {
      const pending = statements.pending.get() as { n: number; oldest: number | null };
      const failed = statements.failed.get() as { n: number; oldest: number | null };
      const oldest = [pending.oldest, failed.oldest].filter((at) => at !== null);
      return {
        pending: pending.n,
        failed: failed.n,
        oldestUndeliveredAt: oldest.length > 0 ? Math.min(...oldest) : null,
      };
    },
    /** The newest failed delivery attempt, if any. */
    lastPostbackError(): LastPostbackError | undefined {
      const row = statements.lastError.get() as
        | { event_id: string; attempted_at: number; status: number | null; error: string }
        | undefined;
      if (!row) return undefined;
      return {
        eventId: row.event_id,
        paymentId: statements.paymentOfEvent.get(row.event_id) as string,
        attemptedAt: row.attempted_at,
        status: row.status,
        error: row.error,
      };
    },
  };
}
