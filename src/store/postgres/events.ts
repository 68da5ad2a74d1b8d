/**
 * The postback outbox queries (`EventStore` in store/storage.ts documents each) on
 * PostgreSQL, with the SQLite store's semantics and row shapes. `seq` (the
 * insertion order, SQLite's rowid) orders them; it and `lease_until` (a
 * replica's claim, queries.ts `claimDueEvents`) stay out of the rows.
 */
import type { AttemptRow, EventQueries, EventRow, EventState } from "../storage.ts";
import { PENDING_SUMMARY_SQL } from "../storage.ts";
import type { Connections } from "./index.ts";
import { insertEvent, recordAttempt } from "./queries.ts";

/** The columns of an {@link EventRow}: the SQLite table's (what migrate-db copies too). */
export const EVENT_COLUMNS = [
  "id",
  "payment_id",
  "type",
  "url",
  "created_at",
  "state",
  "attempts",
  "round_attempts",
  "next_attempt_at",
  "last_status",
  "last_error",
  "delivered_at",
  "payload",
  "requeued_at",
] as const satisfies ReadonlyArray<keyof EventRow>;

const COLUMNS = EVENT_COLUMNS.join(", ");

export function createPostgresEventQueries({
  read,
  write,
  transaction,
}: Connections): EventQueries {
  return {
    insert: (row) => insertEvent(write, row),
    async get(id) {
      const { rows } = await read.query<EventRow>(`SELECT ${COLUMNS} FROM events WHERE id = $1`, [
        id,
      ]);
      return rows[0];
    },
    async byPayment(paymentId) {
      const { rows } = await read.query<EventRow>(
        `SELECT ${COLUMNS} FROM events WHERE payment_id = $1 ORDER BY seq`,
        [paymentId],
      );
      return rows;
    },
    async byPayments(paymentIds) {
      const byPayment = new Map<string, EventRow[]>();
      if (paymentIds.length === 0) return byPayment;
      const { rows } = await read.query<EventRow>(
        `SELECT ${COLUMNS} FROM events WHERE payment_id = ANY($1) ORDER BY seq`,
        [[...paymentIds]],
      );
      for (const row of rows) {
        const list = byPayment.get(row.payment_id);
        if (list) list.push(row);
        else byPayment.set(row.payment_id, [row]);
      }
      return byPayment;
    },
    async pendingHeads(limit) {
      const { rows } = await read.query<EventRow>(
        `SELECT ${EVENT_COLUMNS.map((column) => `e.${column}`).join(", ")}
         FROM events AS e WHERE e.state = 'pending'
           AND NOT EXISTS (SELECT 1 FROM events AS p
             WHERE p.payment_id = e.payment_id AND p.state = 'pending' AND p.seq < e.seq)
         ORDER BY e.next_attempt_at, e.seq LIMIT $1`,
        [limit],
      );
      return rows;
    },
    async pendingSummary() {
      const { rows } = await read.query<{ count: number; oldest: number | null }>(
        PENDING_SUMMARY_SQL,
      );
      const row = rows[0] as { count: number; oldest: number | null };
      return { count: row.count, oldestAt: row.oldest };
    },
    async list(state?: EventState) {
      const { rows } =
        state === undefined
          ? await read.query<EventRow>(`SELECT ${COLUMNS} FROM events ORDER BY seq`)
          : await read.query<EventRow>(
              `SELECT ${COLUMNS} FROM events WHERE state = $1 ORDER BY seq`,
              [state],
            );
      return rows;
    },
    async claim(id, now, leaseUntil) {
      // NOTE: a row another replica is claiming at this instant is skipped,
      // not waited for; one whose lease is live stays with its holder; a
      // replica that died mid-delivery loses it when the lease runs out.
      const { rows } = await write.query<EventRow>(
        `UPDATE events SET lease_until = $3
         WHERE id = (SELECT id FROM events WHERE id = $1 AND state = 'pending'
           AND (lease_until IS NULL OR lease_until <= $2) FOR UPDATE SKIP LOCKED)
         RETURNING ${COLUMNS}`,
        [id, now, leaseUntil],
      );
      return rows[0];
    },
    async setPayload(id, payload) {
      await write.query("UPDATE events SET payload = $2 WHERE id = $1 AND payload IS NULL", [
        id,
        payload,
      ]);
    },
    async attemptsOf(eventId) {
      const { rows } = await read.query<AttemptRow>(
        "SELECT * FROM postback_attempts WHERE event_id = $1 ORDER BY id",
        [eventId],
      );
      return rows;
    },
    recordAttempt: (attempt, outcome) => transaction(() => recordAttempt(write, attempt, outcome)),
    async requeue(ids, now) {
      if (ids.length === 0) return;
      // One statement: atomic on its own, and part of the caller's transaction if any.
      await write.query(
        `UPDATE events SET state = 'pending', round_attempts = 0, next_attempt_at = $2,
           delivered_at = NULL, requeued_at = $2, lease_until = NULL
         WHERE id = ANY($1)`,
        [[...ids], now],
      );
    },
  };
}
