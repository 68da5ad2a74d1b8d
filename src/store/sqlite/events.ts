/**
 * The postback outbox on SQLite ({@link EventStore} in store/storage.ts
 * documents each query): events written in the same transaction as the
 * state change that causes them, and their delivery state. Statements are
 * prepared once; the insertion order is the rowid.
 */
import {
  type AttemptRow,
  type EventRow,
  type EventState,
  type EventStore,
  PENDING_SUMMARY_SQL,
} from "../storage.ts";
import type { Db } from "./index.ts";

export function createEventStore(db: Db): EventStore {
  const statements = {
    insert: db.prepare(`INSERT INTO events (id, payment_id, type, url, created_at, next_attempt_at)
      VALUES (@id, @payment_id, @type, @url, @created_at, @next_attempt_at)`),
    get: db.prepare("SELECT * FROM events WHERE id = ?"),
    byPayment: db.prepare("SELECT * FROM events WHERE payment_id = ? ORDER BY rowid"),
    // NOTE: rowid is insertion order, so it orders a payment's events even
    // when two share a created_at (written in the same transaction).
    pendingHeads: db.prepare(`SELECT * FROM events AS e WHERE e.state = 'pending'
      AND NOT EXISTS (SELECT 1 FROM events AS p
        WHERE p.payment_id = e.payment_id AND p.state = 'pending' AND p.rowid < e.rowid)
      ORDER BY e.next_attempt_at, e.rowid LIMIT ?`),
    pendingSummary: db.prepare(PENDING_SUMMARY_SQL),
    list: db.prepare("SELECT * FROM events ORDER BY rowid"),
    listByState: db.prepare("SELECT * FROM events WHERE state = ? ORDER BY rowid"),
    byPayments: db.prepare(
      "SELECT * FROM events WHERE payment_id IN (SELECT value FROM json_each(?)) ORDER BY rowid",
    ),
    setPayload: db.prepare("UPDATE events SET payload = ? WHERE id = ? AND payload IS NULL"),
    insertAttempt: db.prepare(`INSERT INTO postback_attempts
      (event_id, attempted_at, duration_ms, status, error)
      VALUES (@event_id, @attempted_at, @duration_ms, @status, @error)`),
    attemptsOf: db.prepare("SELECT * FROM postback_attempts WHERE event_id = ? ORDER BY id"),
    // NOTE: `AND state = 'pending'` so an attempt that was in flight while an
    // operator re-queued or the event changed does not overwrite that.
    finish: db.prepare(`UPDATE events SET state = @state, attempts = attempts + 1,
      round_attempts = round_attempts + 1, next_attempt_at = @next_attempt_at,
      last_status = @last_status, last_error = @last_error, delivered_at = @delivered_at
      WHERE id = @id AND state = 'pending' AND round_attempts = @round_attempts`),
    requeue: db.prepare(`UPDATE events SET state = 'pending', round_attempts = 0,
      next_attempt_at = @now, delivered_at = NULL, requeued_at = @now WHERE id = @id`),
  };

  return {
    insert(
      row: Pick<EventRow, "id" | "payment_id" | "type" | "url" | "created_at" | "next_attempt_at">,
    ) {
      statements.insert.run(row);
    },
    get(id: string): EventRow | undefined {
      return statements.get.get(id) as EventRow | undefined;
    },
    /** A payment's events in the order they were written. */
    byPayment(paymentId: string): EventRow[] {
      return statements.byPayment.all(paymentId) as EventRow[];
    },
    /** The events of several payments in one query, each payment's in the order written. */
    byPayments(paymentIds: readonly string[]): Map<string, EventRow[]> {
      const byPayment = new Map<string, EventRow[]>();
      if (paymentIds.length === 0) return byPayment;
      for (const row of statements.byPayments.all(JSON.stringify(paymentIds)) as EventRow[]) {
        const list = byPayment.get(row.payment_id);
        if (list) list.push(row);
        else byPayment.set(row.payment_id, [row]);
      }
      return byPayment;
    },
    /**
     * The first pending event of each payment (a later one waits for it),
     * soonest due first. Due or not: the caller compares next_attempt_at.
     */
    pendingHeads(limit: number): EventRow[] {
      return statements.pendingHeads.all(limit) as EventRow[];
    },
    /**
     * The undelivered queue: how many events are pending, and since when
     * (UNIX ms) the oldest has waited: its creation, or its re-queue by an
     * operator if later. `oldestAt` is null when none is pending.
     */
    pendingSummary(): { count: number; oldestAt: number | null } {
      const row = statements.pendingSummary.get() as { count: number; oldest: number | null };
      return { count: row.count, oldestAt: row.oldest };
    },
    /** All events, or those in `state`, in the order they were written. */
    list(state?: EventState): EventRow[] {
      return (
        state === undefined ? statements.list.all() : statements.listByState.all(state)
      ) as EventRow[];
    },
    /**
     * Claims pending event `id` for one delivery attempt, until `leaseUntil`
     * (UNIX ms), and returns its current row; undefined if it is no longer
     * pending or another replica holds it. On SQLite one daemon delivers
     * (the database lock): nothing to take from anyone, the row is returned.
     * On PostgreSQL (store/postgres/storage.ts) the claim is a lease, so a
     * replica that dies mid-delivery lets it go when the lease runs out.
     */
    claim(id: string, _now: number, _leaseUntil: number): EventRow | undefined {
      const row = statements.get.get(id) as EventRow | undefined;
      return row?.state === "pending" ? row : undefined;
    },
    /** Stores the body of the first attempt; later attempts send the same bytes. */
    setPayload(id: string, payload: string): void {
      statements.setPayload.run(payload, id);
    },
    attemptsOf(eventId: string): AttemptRow[] {
      return statements.attemptsOf.all(eventId) as AttemptRow[];
    },
    /**
     * Records one delivery attempt and the event's new state, atomically.
     * `round_attempts` is the value the attempt started from: if an operator
     * re-queued the event meanwhile, the attempt is recorded but the state
     * is left alone. Returns whether the state was updated.
     */
    recordAttempt: db.transaction(
      (
        attempt: Omit<AttemptRow, "id">,
        outcome: {
          state: EventState;
          round_attempts: number;
          next_attempt_at: number;
          delivered_at: number | null;
        },
      ): boolean => {
        statements.insertAttempt.run(attempt);
        const result = statements.finish.run({
          id: attempt.event_id,
          state: outcome.state,
          round_attempts: outcome.round_attempts,
          next_attempt_at: outcome.next_attempt_at,
          last_status: attempt.status,
          last_error: attempt.error,
          delivered_at: outcome.delivered_at,
        });
        return result.changes === 1;
      },
    ),
    /** Puts events back to pending, due at `now`, with a fresh retry schedule. */
    requeue: db.transaction((ids: readonly string[], now: number): void => {
      for (const id of ids) statements.requeue.run({ id, now });
    }),
  };
}
