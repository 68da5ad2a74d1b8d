/**
 * Payments by status and the status transitions since start, held in
 * memory: seeded once from the database (one GROUP BY on the
 * payments_by_status index), then moved by every create and by the
 * transitions of every commit (told by the change feed after the commit,
 * never on a rollback). Reading them counts no rows, so a metrics scrape
 * costs the same with a million payments as with ten.
 *
 * Only this process writes statuses (the CLI's commands read, or refuse a
 * live database), so the tallies stay equal to the table.
 */
import { PAYMENT_STATUSES, type PaymentStatus } from "./lifecycle.ts";

/** What the tallies say at one moment. */
export type PaymentTallies = {
  byStatus: Readonly<Record<PaymentStatus, number>>;
  /** Payments created since start (a repeated order_id creates none). */
  created: number;
  /** Status transitions since start, one entry per from→to seen, in first-seen order. */
  transitions: ReadonlyArray<{ from: PaymentStatus; to: PaymentStatus; count: number }>;
};

export type Tallies = {
  /** `count` new payments committed (status `waiting`). */
  created(count: number): void;
  /** A commit changed these statuses. */
  transitioned(changes: ReadonlyArray<{ from: PaymentStatus; to: PaymentStatus }>): void;
  /**
   * The table's counts read again (replicas on PostgreSQL: other replicas'
   * commits move them too).
   */
  recount(byStatus: Partial<Record<PaymentStatus, number>>): void;
  snapshot(): PaymentTallies;
};

export function createTallies({
  byStatus,
}: {
  /** The table's counts at start; a status missing from it counts 0. */
  byStatus: Partial<Record<PaymentStatus, number>>;
}): Tallies {
  const counts = Object.fromEntries(
    PAYMENT_STATUSES.map((status) => [status, byStatus[status] ?? 0]),
  ) as Record<PaymentStatus, number>;
  let created = 0;
  const transitions = new Map<string, { from: PaymentStatus; to: PaymentStatus; count: number }>();
  return {
    created(count) {
      created += count;
      counts.waiting += count;
    },
    transitioned(changes) {
      for (const { from, to } of changes) {
        counts[from]--;
        counts[to]++;
        const key = `${from}>${to}`;
        const entry = transitions.get(key);
        if (entry) entry.count++;
        else transitions.set(key, { from, to, count: 1 });
      }
    },
    recount(byStatus) {
      for (const status of PAYMENT_STATUSES) counts[status] = byStatus[status] ?? 0;
    },
    snapshot: () => ({
      byStatus: { ...counts },
      created,
      transitions: [...transitions.values()].map((entry) => ({ ...entry })),
    }),
  };
}
