/**
 * The bench's fixtures write what the daemon would have written: every
 * seeded payment, read back with its transfers, is a fixed point of the
 * lifecycle rule (deciding it again changes no field and raises no event),
 * and its postback events are the ones the rule raised, for the shops that
 * get them. A fixture that drifts from the rule (rows stored as `waiting`
 * with a deadline long past, say) makes the daemon work off a backlog no
 * real database has, and the bench measures that instead.
 */
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { decide, type EventType } from "../../src/payments/lifecycle.ts";
import { type Db, openDatabase } from "../../src/store/sqlite/index.ts";
import type { EventRow, StoredPayment, TransferRow } from "../../src/store/storage.ts";
import { SEED_HEAD, SQL_SEED_MIX, seedPayments, seedPaymentsBySql } from "../bench/seed.ts";
import { tempDir } from "../helpers/index.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

/** Each payment of `db` against the rule at `now`: the fields it would change, the events it would raise. */
function driftFromTheRule(db: Db, now: number) {
  const transfers = db
    .prepare("SELECT * FROM transfers ORDER BY network, block_number, log_index")
    .all() as TransferRow[];
  const byPayment = new Map<string, TransferRow[]>();
  for (const t of transfers)
    byPayment.set(t.payment_id, [...(byPayment.get(t.payment_id) ?? []), t]);
  const drift: string[] = [];
  for (const payment of db.prepare("SELECT * FROM payments").all() as StoredPayment[]) {
    const { next, events } = decide({
      payment,
      transfers: (byPayment.get(payment.id) ?? []).map((t) => ({
        txHash: t.tx_hash,
        blockNumber: t.block_number,
        logIndex: t.log_index,
        value: BigInt(t.value),
        blockTimestamp: t.block_timestamp,
        network: t.network,
      })),
      networks: { heads: new Map([["ethereum", SEED_HEAD]]), requiredConfirmations: () => 1 },
      now,
    });
    for (const [field, value] of Object.entries(next)) {
      const stored = payment[field as keyof StoredPayment];
      if (stored !== value)
        drift.push(`${payment.status} ${payment.id}.${field}: ${stored} -> ${value}`);
    }
    if (events.length > 0)
      drift.push(`${payment.status} ${payment.id} raises ${events.join(", ")}`);
  }
  return drift;
}

function eventsByStatus(db: Db) {
  const rows = db
    .prepare(
      "SELECT p.status, e.type, e.state FROM events e JOIN payments p ON p.id = e.payment_id",
    )
    .all() as Array<{ status: string; type: EventType; state: EventRow["state"] }>;
  const count: Record<string, number> = {};
  for (const row of rows) {
    const key = `${row.status} ${row.type} ${row.state}`;
    count[key] = (count[key] ?? 0) + 1;
  }
  return count;
}

describe("the bench's seeded databases", () => {
  test("seedPayments: pending, paid and expired rows are what the lifecycle decided, with the paid postback delivered", () => {
    const path = join(dir.path, "seed.sqlite");
    const seeded = seedPayments({ path, counts: { pending: 200, paid: 300, expired: 400 } });
    const db = openDatabase({ path, migrate: false });
    try {
      expect(driftFromTheRule(db, Date.now())).toEqual([]);
      const statuses = Object.fromEntries(
        (
          db.prepare("SELECT status, count(*) AS n FROM payments GROUP BY status").all() as Array<{
            status: string;
            n: number;
          }>
        ).map((r) => [r.status, r.n]),
      );
      expect(statuses).toEqual({ waiting: 200, paid: 300, expired: 400 });
      // Nothing open is overdue: the daemon's start-up sweep has nothing to do.
      expect(
        db
          .prepare(
            "SELECT count(*) FROM payments WHERE status IN ('waiting', 'seen') AND expires_at <= ?",
          )
          .pluck()
          .get(Date.now()),
      ).toBe(0);
      expect(eventsByStatus(db)).toEqual({ "paid payment.paid delivered": 300 });
      expect(seeded.filter((p) => p.kind === "paid").length).toBe(300);
    } finally {
      db.close();
    }
  });

  test("seedPaymentsBySql: every status of its mix is what the lifecycle decided", () => {
    const path = join(dir.path, "sql.sqlite");
    seedPaymentsBySql({ path, total: 1_000, pendingEvents: 10 });
    const db = openDatabase({ path, migrate: false });
    try {
      expect(driftFromTheRule(db, Date.now())).toEqual([]);
      const paid = (SQL_SEED_MIX.paid * 1_000) / 100;
      expect(eventsByStatus(db)).toEqual({
        "paid payment.paid delivered": paid - 10,
        "paid payment.paid pending": 10,
      });
    } finally {
      db.close();
    }
  });
});
