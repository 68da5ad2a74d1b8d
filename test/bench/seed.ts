/**
 * Synthetic payments written straight into a daemon database (real
 * migrations, real schema), in big transactions, with random addresses:
 * nothing is derived. The daemon then opens the file as its own.
 *
 * Each row is what the daemon would have stored: its lifecycle fields
 * (status, flags, amounts) are decided by the real rule
 * (payments/lifecycle.ts `decide`) from the row as start_payment wrote it
 * and the transfers the watcher recorded, and the postback events that
 * decision raised are stored as delivered (test/project/bench-seed.test.ts checks a
 * seeded database against the rule).
 */
import { randomBytes } from "node:crypto";
import { decide } from "../../src/payments/lifecycle.ts";
import { enabledEventsOf } from "../../src/payments/outbox.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import { LEGACY_NETWORK, type StoredPayment } from "../../src/store/storage.ts";

export type SeedKind = "pending" | "paid" | "expired";

export type SeededPayment = { id: string; address: string; kind: SeedKind };

const DAY_MS = 86_400_000;
/** The head the seeded transfers are confirmed at (the daemon's cursor starts elsewhere). */
export const SEED_HEAD = 1_000_000;
/** The daemon's default postback events (config postbacks.events). */
const DEFAULT_EVENTS = ["payment.paid"] as const;

/**
 * Inserts `counts` payments into the database at `path` (created if needed)
 * and returns their ids and addresses in insertion order. Paid ones get one
 * transfer row each, as the watcher would have written it, and the
 * payment.paid postback, delivered.
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
     status, seen_at, paid_at, tx_hash, block_number, paid_amount, late_amount, paid_late_at,
     reorged_after_paid_at, network, block_network, wrong_network_amount)
    VALUES (@id, @amount, @derivation_index, @address, @data, @postback_url, @created_at,
     @expires_at, @status, @seen_at, @paid_at, @tx_hash, @block_number, @paid_amount,
     @late_amount, @paid_late_at, @reorged_after_paid_at, @network, @block_network,
     @wrong_network_amount)`);
  const insertTransfer = db.prepare(`INSERT INTO transfers
    (tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id,
     recorded_at, block_timestamp, network)
    VALUES (@tx_hash, 0, @block_number, @block_hash, @from_address, @to_address, @value, @id,
     @recorded_at, @block_timestamp, @network)`);
  const insertEvent = db.prepare(`INSERT INTO events (id, payment_id, type, url, created_at,
      state, attempts, round_attempts, next_attempt_at, last_status, delivered_at)
    VALUES (@id, @payment_id, @type, @url, @created_at, 'delivered', 1, 1, @created_at, 200,
      @delivered_at)`);
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
  const heads = new Map([[LEGACY_NETWORK, SEED_HEAD]]);
  const networks = { heads, requiredConfirmations: () => 1 };
  // One random buffer per batch: a randomBytes call per field costs more than the inserts.
  const ROW_BYTES = 8 + 20 + 32 + 32 + 20 + 12;
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
      // As start_payment writes it: nothing received yet.
      const created: StoredPayment = {
        id,
        amount: value,
        derivation_index: first + i,
        address,
        data: '{"order_id":"444"}',
        postback_url: "http://127.0.0.1:9/payment_complete",
        created_at: createdAt,
        expires_at: createdAt + DAY_MS,
        seen_at: null,
        paid_at: null,
        tx_hash: null,
        block_number: null,
        paid_amount: "0",
        late_amount: "0",
        paid_late_at: null,
        reorged_after_paid_at: null,
        order_id: null,
        description: null,
        return_url: null,
        cancel_url: null,
        cancelled_at: null,
        status: "waiting",
        postback_events: null,
        networks: null,
        network: null,
        block_network: null,
        wrong_network_amount: "0",
      };
      const transfer =
        kind === "paid"
          ? {
              tx_hash: hex(row, 28, 32),
              block_number: 1_000 + (i % 100_000),
              block_hash: hex(row, 60, 32),
              from_address: hex(row, 92, 20),
              to_address: address,
              value,
              id,
              recorded_at: createdAt + 60_000,
              block_timestamp: Math.floor((createdAt + 50_000) / 1000),
              network: LEGACY_NETWORK,
            }
          : undefined;
      // What the watcher and the deadline sweep decided, by the daemon's own rule.
      const decision = decide({
        payment: created,
        transfers: transfer
          ? [
              {
                txHash: transfer.tx_hash,
                blockNumber: transfer.block_number,
                logIndex: 0,
                value: amount,
                blockTimestamp: transfer.block_timestamp,
                network: LEGACY_NETWORK,
              },
            ]
          : [],
        networks,
        now: kind === "pending" ? createdAt + 1 : createdAt + 2 * DAY_MS,
      });
      insertPayment.run({ ...created, ...decision.next });
      if (transfer) insertTransfer.run(transfer);
      const enabled = enabledEventsOf(created, DEFAULT_EVENTS);
      for (const [n, type] of decision.events.filter((t) => enabled.includes(t)).entries()) {
        insertEvent.run({
          id: `evt_${hex(row, 112, 11).slice(2)}${n.toString(16).padStart(2, "0")}`,
          payment_id: id,
          type,
          url: created.postback_url,
          created_at: createdAt + 120_000,
          delivered_at: createdAt + 120_150,
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
  durable(db);
  db.close();
  return seeded;
}

/**
 * Ends a fixture's writes as the daemon's would have ended: checkpointed
 * and on the disk. The fixture writes without fsync (synchronous = OFF);
 * left so, the first checkpoint of the daemon under test would flush the
 * whole fixture from the page cache, a stall no real database has.
 */
function durable(db: ReturnType<typeof openDatabase>): void {
  db.pragma("synchronous = FULL");
  db.pragma("wal_checkpoint(TRUNCATE)");
}

/** How `seedPaymentsBySql` spreads statuses, in hundredths of the payments. */
export const SQL_SEED_MIX = { waiting: 2, seen: 1, paid: 60, expired: 35, cancelled: 2 };

/**
 * Writes `total` payments with SQL alone, in one transaction (a recursive
 * CTE generates the rows: ~1,000,000 in seconds), with stored statuses in
 * the mix above, and one postback event per paid payment: delivered, except
 * the newest `pendingEvents`, pending with their next attempt an hour away
 * (a shop that is down; the daemon's sender stays idle). Seen and paid ones
 * have their transfer. Ids, addresses and hashes follow the row number;
 * open payments expire tomorrow, so the daemon's start-up sweep has nothing
 * to do. Every row is what the lifecycle rule decides of it
 * (test/project/bench-seed.test.ts).
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
        status, cancelled_at, network, block_network)
      SELECT printf('%016x', @first + i), '100000000', @first + i, printf('0x%040x', @first + i),
        '{"order_id":"444"}', 'http://127.0.0.1:9/payment_complete', created,
        CASE WHEN k < @paid_at THEN @now + 86400000 ELSE created + 86400000 END,
        CASE WHEN k >= @seen_at AND k < @expired_at THEN created + 60000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN created + 120000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN printf('0x%064x', i) END,
        CASE WHEN k >= @seen_at AND k < @expired_at THEN 1000 + i % 100000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN '100000000'
             WHEN k >= @seen_at AND k < @expired_at THEN '50000000' ELSE '0' END,
        CASE WHEN k < @seen_at THEN 'waiting' WHEN k < @paid_at THEN 'seen'
             WHEN k < @expired_at THEN 'paid' WHEN k < @cancelled_at THEN 'expired'
             ELSE 'cancelled' END,
        CASE WHEN k >= @cancelled_at THEN created + 30000 END,
        CASE WHEN k >= @paid_at AND k < @expired_at THEN 'ethereum' END,
        CASE WHEN k >= @seen_at AND k < @expired_at THEN 'ethereum' END
      FROM r`).run({
      total,
      now,
      first,
      seen_at: bounds.seen,
      paid_at: bounds.paid,
      expired_at: bounds.expired,
      cancelled_at: bounds.cancelled,
    });
    // The transfer of each seen and paid payment, as the watcher recorded it.
    db.prepare(`INSERT INTO transfers (tx_hash, log_index, block_number, block_hash,
        from_address, to_address, value, payment_id, recorded_at, block_timestamp, network)
      SELECT printf('0x%064x', derivation_index - @first), 0, block_number,
        printf('0x%064x', block_number), printf('0x%040x', 1), address, paid_amount, id,
        seen_at, (seen_at - 10000) / 1000, 'ethereum'
      FROM payments WHERE status IN ('seen', 'paid') AND derivation_index >= @first`).run({
      first,
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
  durable(db);
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

/**
 * `total` open payments, created two days ago with deadlines a day ago and
 * nothing received: a daemon that was down during a sale comes back to
 * them (ids and addresses follow the row number, from the derivation
 * counter on). Every `optedInEvery`-th opted in to payment.expired; the
 * others get the daemon's default events (no postback on expiry). Returns
 * the ids.
 */
export function seedOverdue({
  path,
  total,
  postbackUrl,
  optedInEvery = 0,
  now = Date.now(),
}: {
  path: string;
  total: number;
  postbackUrl: string;
  optedInEvery?: number;
  now?: number;
}): string[] {
  const db = openDatabase({ path });
  db.pragma("synchronous = OFF");
  const first = db
    .prepare("SELECT value FROM counters WHERE name = 'derivation_index'")
    .pluck()
    .get() as number;
  db.transaction(() => {
    db.prepare(`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @total)
      INSERT INTO payments (id, amount, derivation_index, address, postback_url, created_at,
        expires_at, postback_events)
      SELECT printf('%016x', @first + i), '100000000', @first + i, printf('0x%040x', @first + i + 1),
        @url, @now - 2 * 86400000 + i, @now - 86400000 + i,
        CASE WHEN @every > 0 AND i % @every = 0 THEN '["payment.expired"]' END
      FROM n`).run({ total, url: postbackUrl, now, every: optedInEvery, first });
    db.prepare("UPDATE counters SET value = ? WHERE name = 'derivation_index'").run(first + total);
  })();
  durable(db);
  db.close();
  return Array.from({ length: total }, (_, i) => (first + i).toString(16).padStart(16, "0"));
}
