/**
 * Synthetic payments written straight into a daemon database (real
 * migrations, real schema), in big transactions, with random addresses:
 * nothing is derived. The daemon then opens the file as its own.
 */
import { randomBytes } from "node:crypto";
import { openDatabase } from "../../src/store/sqlite/index.ts";

export type SeedKind = "pending" | "paid" | "expired";

export type SeededPayment = { id: string; address: string; kind: SeedKind };

const DAY_MS = 86_400_000;

/**
 * Inserts `counts` payments into the database at `path` (created if needed)
 * and returns their ids and addresses in insertion order. Paid ones get one
 * transfer row each, as the watcher would have written it.
 */
export function seedPayments({
  path,
  counts,
  amount = 29_000_000n,
  now = Date.now(),
  batch = 50_000,
}: {
  path: string;
  counts: Partial<Record<SeedKind, number>>;
  amount?: bigint;
  now?: number;
  batch?: number;
}): SeededPayment[] {
  const db = openDatabase({ path });
  // NOTE: the fixture, not the daemon: no fsync per batch, and a page cache
  // big enough that inserting random keys into the indexes does not thrash.
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144");
  const insertPayment = db.prepare(`INSERT INTO payments
    (id, amount, derivation_index, address, data, postback_url, created_at, expires_at,
     seen_at, paid_at, tx_hash, block_number, paid_amount)
    VALUES (@id, @amount, @derivation_index, @address, @data, @postback_url, @created_at,
     @expires_at, @seen_at, @paid_at, @tx_hash, @block_number, @paid_amount)`);
  const insertTransfer = db.prepare(`INSERT INTO transfers
    (tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id,
     recorded_at, block_timestamp)
    VALUES (@tx_hash, 0, @block_number, @block_hash, @from_address, @to_address, @value, @id,
     @recorded_at, @block_timestamp)`);
  const first = db
    .prepare("SELECT value FROM counters WHERE name = 'derivation_index'")
    .pluck()
    .get() as number;
  const plan: SeedKind[] = [];
  for (const kind of ["pending", "paid", "expired"] as const) {
    for (let i = 0; i < (counts[kind] ?? 0); i++) plan.push(kind);
  }
  // Interleave kinds, as a real database would have them.
  for (let i = plan.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [plan[i], plan[j]] = [plan[j] as SeedKind, plan[i] as SeedKind];
  }
  const seeded: SeededPayment[] = [];
  const value = amount.toString();
  // One random buffer per batch: a randomBytes call per field costs more than the inserts.
  const ROW_BYTES = 8 + 20 + 32 + 32 + 20;
  const insertBatch = db.transaction((start: number, end: number) => {
    const random = randomBytes((end - start) * ROW_BYTES);
    const hex = (row: number, offset: number, length: number) =>
      `0x${random.toString("hex", row * ROW_BYTES + offset, row * ROW_BYTES + offset + length)}`;
    for (let i = start; i < end; i++) {
      const row = i - start;
      const kind = plan[i] as SeedKind;
      const id = hex(row, 0, 8).slice(2);
      const address = hex(row, 8, 20);
      const createdAt = kind === "pending" ? now - 60_000 : now - 30 * DAY_MS;
      const paid = kind === "paid";
      const block = 1_000 + (i % 100_000);
      const txHash = paid ? hex(row, 28, 32) : null;
      insertPayment.run({
        id,
        amount: value,
        derivation_index: first + i,
        address,
        data: '{"order_id":"444"}',
        postback_url: "http://127.0.0.1:9/payment_complete",
        created_at: createdAt,
        expires_at: createdAt + DAY_MS,
        seen_at: paid ? createdAt + 60_000 : null,
        paid_at: paid ? createdAt + 120_000 : null,
        tx_hash: txHash,
        block_number: paid ? block : null,
        paid_amount: paid ? value : "0",
      });
      if (paid) {
        insertTransfer.run({
          tx_hash: txHash,
          block_number: block,
          block_hash: hex(row, 60, 32),
          from_address: hex(row, 92, 20),
          to_address: address,
          value,
          id,
          recorded_at: createdAt + 60_000,
          block_timestamp: Math.floor((createdAt + 50_000) / 1000),
        });
      }
      seeded.push({ id, address, kind });
    }
  });
  for (let start = 0; start < plan.length; start += batch) {
    insertBatch(start, Math.min(plan.length, start + batch));
  }
  db.prepare("UPDATE counters SET value = ? WHERE name = 'derivation_index'").run(
    first + plan.length,
  );
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  return seeded;
}

/** How `seedPaymentsBySql` spreads statuses, in hundredths of the payments. */
export const SQL_SEED_MIX = { waiting: 2, seen: 1, paid: 60, expired: 35, cancelled: 2 };

/**
 * Writes `total` payments with SQL alone, in one transaction (a recursive
 * CTE generates the rows: ~1,000,000 in seconds), with stored statuses in
 * the mix above, and one postback event per paid payment: delivered, except
 * the newest `pendingEvents`, pending with their next attempt an hour away
 * (a shop that is down; the daemon's sender stays idle). Ids, addresses and
 * hashes follow the row number; open payments expire tomorrow, so the
 * daemon's start-up sweep has nothing to do.
 */
export function seedPaymentsBySql({
  path,
  total,
  pendingEvents,
  now = Date.now(),
}: {
  path: string;
  total: number;
  pendingEvents: number;
  now?: number;
}): void {
  const db = openDatabase({ path });
  // NOTE: the fixture, not the daemon: no fsync, and a page cache that
  // holds the indexes while they grow.
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -524288");
  const first = db
    .prepare("SELECT value FROM counters WHERE name = 'derivation_index'")
    .pluck()
    .get() as number;
  const { waiting, seen, paid, expired } = SQL_SEED_MIX;
  // Status by row number modulo 100: [0, w) waiting, then seen, paid, expired, cancelled.
  const bounds = {
    seen: waiting,
    paid: waiting + seen,
    expired: waiting + seen + paid,
    cancelled: waiting + seen + paid + expired,
  };
  db.transaction(() => {
    db.prepare(`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @total),
      r AS (SELECT i, i % 100 AS k, @now - 2 * 86400000 - (@total - i) * 1000 AS created FROM n)
      INSERT INTO payments (id, amount, derivation_index, address, data, postback_url,
        created_at, expires_at, seen_at, paid_at, tx_hash, block_number, paid_amount,
        status, cancelled_at)
      SELECT printf('%016x', @first + i), '100000000', @first + i, printf('0x%040x', @first + i),
        '{"order_id":"444"}', 'http://127.0.0.1:9/payment_complete', created,
        CASE WHEN k < @seen_at THEN @now + 86400000 ELSE created + 86400000 END,
        CASE WHEN k >= @seen_at AND k < @expired_at THEN created + 60000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN created + 120000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN printf('0x%064x', i) END,
        CASE WHEN k >= @seen_at AND k < @expired_at THEN 1000 + i % 100000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN '100000000'
             WHEN k >= @seen_at AND k < @expired_at THEN '50000000' ELSE '0' END,
        CASE WHEN k < @seen_at THEN 'waiting' WHEN k < @paid_at THEN 'seen'
             WHEN k < @expired_at THEN 'paid' WHEN k < @cancelled_at THEN 'expired'
             ELSE 'cancelled' END,
        CASE WHEN k >= @cancelled_at THEN created + 30000 END
      FROM r`).run({
      total,
      now,
      first,
      seen_at: bounds.seen,
      paid_at: bounds.paid,
      expired_at: bounds.expired,
      cancelled_at: bounds.cancelled,
    });
    db.prepare(`INSERT INTO events (id, payment_id, type, url, created_at, state, attempts,
        round_attempts, next_attempt_at, last_status, delivered_at)
      SELECT printf('evt_%024x', derivation_index), id, 'payment.paid', postback_url, paid_at,
        'delivered', 1, 1, paid_at, 200, paid_at + 150
      FROM payments WHERE status = 'paid' ORDER BY derivation_index`).run();
    db.prepare(`UPDATE events SET state = 'pending', delivered_at = NULL, last_status = 500,
        last_error = 'HTTP 500', next_attempt_at = @next
      WHERE rowid > (SELECT max(rowid) FROM events) - @pending`).run({
      pending: pendingEvents,
      next: now + 3_600_000,
    });
    db.prepare("UPDATE counters SET value = ? WHERE name = 'derivation_index'").run(first + total);
  })();
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

/** Puts the newest `count` events back to pending (a growing backlog), due in an hour. */
export function makeEventsPending({ path, count }: { path: string; count: number }): void {
  const db = openDatabase({ path, migrate: false });
  db.prepare(`UPDATE events SET state = 'pending', delivered_at = NULL, next_attempt_at = @next
    WHERE rowid > (SELECT max(rowid) FROM events) - @count`).run({
    count,
    next: Date.now() + 3_600_000,
  });
  db.close();
}
