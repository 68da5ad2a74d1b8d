/**
 * The payment queries (`PaymentStore` in store/storage.ts documents each) on PostgreSQL,
 * with the SQLite store's semantics and row shapes: the same columns,
 * amounts as decimal strings, times and block numbers as numbers, undefined
 * for no row. `lockPayment` and `lockCursor` take the row locks
 * (`FOR UPDATE`) that SQLite does not need.
 */
import type {
  BlockRow,
  CursorRow,
  LifecycleFields,
  ListPosition,
  PaymentQueries,
  PaymentStatus,
  StoredPayment,
  TransferRow,
} from "../storage.ts";
import { COUNT_BY_STATUS_SQL, LEGACY_NETWORK } from "../storage.ts";
import type { Connections } from "./index.ts";
import {
  allocateIndex,
  allocateIndexes,
  getPayment,
  getPaymentByOrderId,
  insertPayment,
  insertPayments,
  insertTransfer,
} from "./queries.ts";

/** Groups rows by their `payment_id`, in the order given. */
function byPaymentId<T extends { payment_id: string }>(rows: T[]): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const row of rows) {
    const list = map.get(row.payment_id);
    if (list) list.push(row);
    else map.set(row.payment_id, [row]);
  }
  return map;
}

export function createPostgresPaymentQueries({ read, write }: Connections): PaymentQueries {
  return {
    allocateIndex: () => allocateIndex(write),
    allocateIndexes: (count) => allocateIndexes(write, count),
    insertPayment: (row) => insertPayment(write, row),
    insertPayments: (rows) => insertPayments(write, rows),
    async getPaymentsByOrderIds(orderIds) {
      if (orderIds.length === 0) return [];
      const { rows } = await read.query<StoredPayment>(
        "SELECT * FROM payments WHERE order_id = ANY($1)",
        [[...orderIds]],
      );
      return rows;
    },
    getPayment: (id) => getPayment(read, id),
    async lockPayment(id) {
      // A lock, not a write: on the transaction's connection like any read.
      const { rows } = await read.query<StoredPayment>(
        "SELECT * FROM payments WHERE id = $1 FOR UPDATE",
        [id],
      );
      return rows[0];
    },
    async getPaymentsMany(ids) {
      if (ids.length === 0) return [];
      const { rows } = await read.query<StoredPayment>(
        "SELECT * FROM payments WHERE id = ANY($1)",
        [[...ids]],
      );
      return rows;
    },
    getPaymentByOrderId: (orderId) => getPaymentByOrderId(read, orderId),
    async setCancelled({ id, now }) {
      await write.query(
        "UPDATE payments SET cancelled_at = $2 WHERE id = $1 AND cancelled_at IS NULL",
        [id, now],
      );
    },
    async listPayments({
      after,
      limit,
      status,
      since,
    }: {
      after: ListPosition | undefined;
      limit: number;
      status?: PaymentStatus | undefined;
      since?: number | undefined;
    }) {
      const values: unknown[] = [];
      const where: string[] = [];
      if (after) {
        values.push(after.created_at, after.id);
        where.push(`(created_at, id) < ($${values.length - 1}, $${values.length})`);
      }
      if (status !== undefined) {
        values.push(status);
        where.push(`status = $${values.length}`);
      }
      if (since !== undefined) {
        values.push(since);
        where.push(`created_at >= $${values.length}`);
      }
      values.push(limit);
      // NOTE: ids compare in the database's collation, not bytewise as in
      // SQLite: the order of two payments created in the same millisecond
      // may differ between the backends, but the cursor and ORDER BY agree
      // (pagination neither skips nor repeats) and payments_newest serves both.
      const { rows } = await read.query<StoredPayment>(
        `SELECT * FROM payments${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""}
         ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
        values,
      );
      return rows;
    },
    async countByStatus() {
      const { rows } = await read.query<{ status: PaymentStatus; count: number }>(
        COUNT_BY_STATUS_SQL,
      );
      return Object.fromEntries(rows.map((row) => [row.status, row.count])) as Partial<
        Record<PaymentStatus, number>
      >;
    },
    async dueDeadlines(now, page) {
      if (page === undefined) {
        const { rows } = await read.query<StoredPayment>(
          "SELECT * FROM payments WHERE status IN ('waiting', 'seen') AND expires_at <= $1 ORDER BY expires_at, id",
          [now],
        );
        return rows;
      }
      // NOTE: one range of payments_open_deadlines (expires_at, id).
      const { rows } = await read.query<StoredPayment>(
        `SELECT * FROM payments WHERE status IN ('waiting', 'seen')
          AND expires_at <= $1 AND (expires_at, id) > ($2, $3)
          ORDER BY expires_at, id LIMIT $4`,
        [now, page.after?.expires_at ?? Number.MIN_SAFE_INTEGER, page.after?.id ?? "", page.limit],
      );
      return rows;
    },
    async nextDeadline(now) {
      const { rows } = await read.query<{ next: number | null }>(
        "SELECT min(expires_at) AS next FROM payments WHERE status IN ('waiting', 'seen') AND expires_at > $1",
        [now],
      );
      return rows[0]?.next ?? undefined;
    },
    async paymentIdByAddress(address) {
      const { rows } = await read.query<{ id: string }>(
        "SELECT id FROM payments WHERE address = $1",
        [address],
      );
      return rows[0]?.id;
    },
    async paymentWindowByAddress(address) {
      const { rows } = await read.query<{ id: string; expires_at: number }>(
        "SELECT id, expires_at FROM payments WHERE address = $1",
        [address],
      );
      return rows[0];
    },
    async confirmingPaymentIds() {
      // NOTE: the condition of the partial index payments_confirming, word
      // for word (postgres migration 0001); amounts compare as NUMERIC.
      const { rows } = await read.query<{ id: string }>(
        `SELECT id FROM payments WHERE status IN ('seen', 'expired', 'cancelled') AND paid_late_at IS NULL
           AND paid_amount >= amount`,
      );
      return rows.map((row) => row.id);
    },
    async updateLifecycle(id: string, fields: LifecycleFields) {
      await write.query(
        `UPDATE payments SET status = $2, seen_at = $3, paid_at = $4, tx_hash = $5,
           block_number = $6, paid_amount = $7, late_amount = $8, paid_late_at = $9,
           reorged_after_paid_at = $10, network = $11, block_network = $12,
           wrong_network_amount = $13
         WHERE id = $1`,
        [
          id,
          fields.status,
          fields.seen_at,
          fields.paid_at,
          fields.tx_hash,
          fields.block_number,
          fields.paid_amount,
          fields.late_amount,
          fields.paid_late_at,
          fields.reorged_after_paid_at,
          fields.network,
          fields.block_network,
          fields.wrong_network_amount,
        ],
      );
    },
    insertTransfer: (row) => insertTransfer(write, row),
    async transfersOf(paymentId) {
      const { rows } = await read.query<TransferRow>(
        "SELECT * FROM transfers WHERE payment_id = $1 ORDER BY block_number, log_index",
        [paymentId],
      );
      return rows;
    },
    async transfersOfMany(paymentIds) {
      if (paymentIds.length === 0) return new Map();
      const { rows } = await read.query<TransferRow>(
        "SELECT * FROM transfers WHERE payment_id = ANY($1) ORDER BY payment_id, block_number, log_index",
        [[...paymentIds]],
      );
      return byPaymentId(rows);
    },
    async forgetAbove(network, number) {
      // One statement: atomic even outside a transaction.
      const { rows } = await write.query<{ payment_id: string }>(
        `WITH gone AS (
           DELETE FROM transfers WHERE network = $1 AND block_number > $2 RETURNING payment_id
         ), blocks_gone AS (
           DELETE FROM blocks WHERE network = $1 AND number > $2
         )
         SELECT DISTINCT payment_id FROM gone`,
        [network, number],
      );
      return rows.map((row) => row.payment_id);
    },
    async rememberBlock(network: string, row: BlockRow) {
      await write.query(
        `INSERT INTO blocks (network, number, hash, parent_hash, timestamp) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (network, number) DO UPDATE SET hash = excluded.hash,
           parent_hash = excluded.parent_hash, timestamp = excluded.timestamp`,
        [network, row.number, row.hash, row.parent_hash, row.timestamp],
      );
    },
    async blockHash(network, number) {
      const { rows } = await read.query<{ hash: string }>(
        "SELECT hash FROM blocks WHERE network = $1 AND number = $2",
        [network, number],
      );
      return rows[0]?.hash;
    },
    async pruneBlocksBelow(network, number) {
      await write.query("DELETE FROM blocks WHERE network = $1 AND number < $2", [network, number]);
    },
    async moveCursor(network, row) {
      await write.query(
        `UPDATE chain_cursor SET block_number = $2, block_hash = $3, head_number = $4, updated_at = $5
         WHERE network = $1`,
        [network, row.block_number, row.block_hash, row.head_number, row.updated_at],
      );
    },
    async getCursor(network) {
      const { rows } = await read.query<CursorRow>(
        "SELECT * FROM chain_cursor WHERE network = $1",
        [network],
      );
      return rows[0];
    },
    async lockCursor(network) {
      // A lock, not a write (as lockPayment).
      const { rows } = await read.query<CursorRow>(
        "SELECT * FROM chain_cursor WHERE network = $1 FOR UPDATE",
        [network],
      );
      return rows[0];
    },
    async cursors() {
      const { rows } = await read.query<CursorRow>("SELECT * FROM chain_cursor ORDER BY id");
      return rows;
    },
    async heads() {
      const { rows } = await read.query<{ network: string; head_number: number }>(
        "SELECT network, head_number FROM chain_cursor",
      );
      return new Map(rows.map((row) => [row.network, row.head_number]));
    },
    async setCursor(row) {
      // NOTE: update first, insert only a new network: an INSERT … ON
      // CONFLICT DO UPDATE would take an identity value on every move, and
      // `id` (what `cursors` orders by, and the rows show) would leap where
      // SQLite's rowid counts 1, 2, 3. Two replicas creating the same
      // network at once still meet in ON CONFLICT.
      await write.query(
        `WITH moved AS (
           UPDATE chain_cursor SET block_number = $4, block_hash = $5, head_number = $6, updated_at = $7
           WHERE network = $1 RETURNING id
         )
         INSERT INTO chain_cursor (network, chain_id, token, block_number, block_hash, head_number, updated_at)
         SELECT $1::text, $2::bigint, $3::text, $4::bigint, $5::text, $6::bigint, $7::bigint
         WHERE NOT EXISTS (SELECT 1 FROM moved)
         ON CONFLICT (network) DO UPDATE SET block_number = excluded.block_number,
           block_hash = excluded.block_hash, head_number = excluded.head_number,
           updated_at = excluded.updated_at`,
        [
          row.network ?? LEGACY_NETWORK,
          row.chain_id,
          row.token,
          row.block_number,
          row.block_hash,
          row.head_number,
          row.updated_at,
        ],
      );
    },
    async setHead(network, head, now) {
      await write.query(
        "UPDATE chain_cursor SET head_number = $2, updated_at = $3 WHERE network = $1",
        [network, head, now],
      );
    },
  };
}
