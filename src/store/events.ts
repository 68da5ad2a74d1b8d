/**
 * The postback outbox: events written in the same transaction as the state
 * change that causes them, and their delivery state.
 */
import type { Db } from "./index.ts";

export type EventState = "pending" | "delivered" | "failed";

export type EventRow = {
  id: string;
  payment_id: string;
  type: string;
  url: string;
  created_at: number;
  state: EventState;
  attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
};

export type AttemptRow = {
  id: number;
  event_id: string;
  attempted_at: number;
  duration_ms: number;
  status: number | null;
  error: string | null;
};

export type EventStore = ReturnType<typeof createEventStore>;

export function createEventStore(db: Db) {
  const statements = {
    insert: db.prepare(`INSERT INTO events (id, payment_id, type, url, created_at, next_attempt_at)
      VALUES (@id, @payment_id, @type, @url, @created_at, @next_attempt_at)`),
    get: db.prepare("SELECT * FROM events WHERE id = ?"),
    byPayment: db.prepare("SELECT * FROM events WHERE payment_id = ? ORDER BY created_at, id"),
    due: db.prepare(
      "SELECT * FROM events WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?",
    ),
    nextDue: db.prepare("SELECT min(next_attempt_at) FROM events WHERE state = 'pending'").pluck(),
    insertAttempt: db.prepare(`INSERT INTO postback_attempts
      (event_id, attempted_at, duration_ms, status, error)
      VALUES (@event_id, @attempted_at, @duration_ms, @status, @error)`),
    attemptsOf: db.prepare("SELECT * FROM postback_attempts WHERE event_id = ? ORDER BY id"),
    finish: db.prepare(`UPDATE events SET state = @state, attempts = attempts + 1,
      next_attempt_at = @next_attempt_at, last_status = @last_status, last_error = @last_error,
      delivered_at = @delivered_at WHERE id = @id`),
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
    byPayment(paymentId: string): EventRow[] {
      return statements.byPayment.all(paymentId) as EventRow[];
    },
    due(now: number, limit: number): EventRow[] {
      return statements.due.all(now, limit) as EventRow[];
    },
    /** When the earliest pending event is due, or undefined if none is pending. */
    nextDueAt(): number | undefined {
      return (statements.nextDue.get() as number | null) ?? undefined;
    },
    attemptsOf(eventId: string): AttemptRow[] {
      return statements.attemptsOf.all(eventId) as AttemptRow[];
    },
    /** Records one delivery attempt and the event's new state, atomically. */
    recordAttempt: db.transaction(
      (
        attempt: Omit<AttemptRow, "id">,
        outcome: {
          state: EventState;
          next_attempt_at: number;
          delivered_at: number | null;
        },
      ) => {
        statements.insertAttempt.run(attempt);
        statements.finish.run({
          id: attempt.event_id,
          state: outcome.state,
          next_attempt_at: outcome.next_attempt_at,
          last_status: attempt.status,
          last_error: attempt.error,
          delivered_at: outcome.delivered_at,
        });
      },
    ),
  };
}
