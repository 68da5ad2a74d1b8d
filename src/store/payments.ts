/**
 * Queries over payments, transfers, the scan cursor and the derivation
 * counter. Statements are prepared once; callers own transactions.
 */
import type { Db } from "./index.ts";

/** A payment's stored status; written only by src/payments (the lifecycle). */
export type PaymentStatus = "waiting" | "seen" | "paid" | "expired" | "cancelled";

export type PaymentRow = {
  id: string;
  amount: string;
  derivation_index: number;
  address: string;
  data: string | null;
  postback_url: string | null;
  created_at: number;
  expires_at: number;
  seen_at: number | null;
  paid_at: number | null;
  tx_hash: string | null;
  /** Block of the transfer that completes (or, while partial, was last added to) the payment. */
  block_number: number | null;
  paid_amount: string;
  late_amount: string;
  paid_late_at: number | null;
  reorged_after_paid_at: number | null;
  /** The shop's order id (unique when set): start_payment is idempotent on it. */
  order_id: string | null;
  description: string | null;
  return_url: string | null;
  cancel_url: string | null;
  cancelled_at: number | null;
  status: PaymentStatus;
  /** JSON array of the event types the shop opted in to; null: the daemon's default. */
  postback_events: string | null;
};

/** The fields the lifecycle decides, stored together. */
export type LifecycleFields = Pick<
  PaymentRow,
  | "status"
  | "seen_at"
  | "paid_at"
  | "tx_hash"
  | "block_number"
  | "paid_amount"
  | "late_amount"
  | "paid_late_at"
  | "reorged_after_paid_at"
>;

/** The columns start_payment writes; the rest start empty. */
export type NewPaymentRow = Pick<
  PaymentRow,
  | "id"
  | "amount"
  | "derivation_index"
  | "address"
  | "data"
  | "postback_url"
  | "created_at"
  | "expires_at"
  | "order_id"
  | "description"
  | "return_url"
  | "cancel_url"
  | "postback_events"
>;

/** A position in the newest-first listing: the last (created_at, id) already returned. */
export type ListPosition = { created_at: number; id: string };

export type TransferRow = {
  tx_hash: string;
  log_index: number;
  block_number: number;
  block_hash: string;
  from_address: string;
  to_address: string;
  value: string;
  payment_id: string;
  recorded_at: number;
  block_timestamp: number | null;
};

export type BlockRow = { number: number; hash: string; parent_hash: string; timestamp: number };

export type CursorRow = {
  chain_id: number;
  token: string;
  block_number: number;
  block_hash: string | null;
  head_number: number;
  updated_at: number;
};

/**
 * Payments by status: a covering scan of the payments_by_status index (no
 * table row is read), run once at start to seed the in-memory tallies.
 * Exported for the plan test and the bench.
 */
export const COUNT_BY_STATUS_SQL = "SELECT status, count(*) AS count FROM payments GROUP BY status";

export type PaymentStore = ReturnType<typeof createPaymentStore>;

export function createPaymentStore(db: Db) {
  const statements = {
    nextIndex: db.prepare(
      "UPDATE counters SET value = value + 1 WHERE name = 'derivation_index' RETURNING value - 1 AS value",
    ),
    insertPayment: db.prepare(`INSERT INTO payments
      (id, amount, derivation_index, address, data, postback_url, created_at, expires_at,
       order_id, description, return_url, cancel_url, postback_events)
      VALUES (@id, @amount, @derivation_index, @address, @data, @postback_url, @created_at, @expires_at,
       @order_id, @description, @return_url, @cancel_url, @postback_events)
      RETURNING *`),
    getPayment: db.prepare("SELECT * FROM payments WHERE id = ?"),
    getPaymentByOrderId: db.prepare("SELECT * FROM payments WHERE order_id = ?"),
    getPaymentsMany: db.prepare(
      "SELECT * FROM payments WHERE id IN (SELECT value FROM json_each(?))",
    ),
    setCancelled: db.prepare(
      "UPDATE payments SET cancelled_at = @now WHERE id = @id AND cancelled_at IS NULL",
    ),
    paymentIdByAddress: db.prepare("SELECT id FROM payments WHERE address = ?").pluck(),
    paymentWindowByAddress: db.prepare("SELECT id, expires_at FROM payments WHERE address = ?"),
    confirming: db
      // NOTE: partial payments cannot change on a new head, only fully received
      // ones waiting for confirmations can. The condition is the partial index
      // payments_confirming's, word for word (migration 0005).
      .prepare(
        `SELECT id FROM payments WHERE status IN ('seen', 'expired', 'cancelled') AND paid_late_at IS NULL
    AND CAST(paid_amount AS INTEGER) >= CAST(amount AS INTEGER)`,
      )
      .pluck(),
    countByStatus: db.prepare(COUNT_BY_STATUS_SQL),
    dueDeadlines: db.prepare(
      "SELECT * FROM payments WHERE status IN ('waiting', 'seen') AND expires_at <= ? ORDER BY expires_at",
    ),
    nextDeadline: db
      .prepare(
        "SELECT min(expires_at) FROM payments WHERE status IN ('waiting', 'seen') AND expires_at > ?",
      )
      .pluck(),
    updateLifecycle: db.prepare(`UPDATE payments SET status = @status,
      seen_at = @seen_at, paid_at = @paid_at, tx_hash = @tx_hash,
      block_number = @block_number, paid_amount = @paid_amount, late_amount = @late_amount,
      paid_late_at = @paid_late_at, reorged_after_paid_at = @reorged_after_paid_at
      WHERE id = @id`),
    insertTransfer: db.prepare(`INSERT OR IGNORE INTO transfers
      (tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id, recorded_at, block_timestamp)
      VALUES (@tx_hash, @log_index, @block_number, @block_hash, @from_address, @to_address, @value, @payment_id, @recorded_at, @block_timestamp)`),
    paymentsWithTransfersAbove: db
      .prepare("SELECT DISTINCT payment_id FROM transfers WHERE block_number > ?")
      .pluck(),
    deleteTransfersAbove: db.prepare("DELETE FROM transfers WHERE block_number > ?"),
    upsertBlock: db.prepare(
      "INSERT OR REPLACE INTO blocks (number, hash, parent_hash, timestamp) VALUES (@number, @hash, @parent_hash, @timestamp)",
    ),
    blockHash: db.prepare("SELECT hash FROM blocks WHERE number = ?").pluck(),
    deleteBlocksAbove: db.prepare("DELETE FROM blocks WHERE number > ?"),
    pruneBlocksBelow: db.prepare("DELETE FROM blocks WHERE number < ?"),
    transfersOf: db.prepare(
      "SELECT * FROM transfers WHERE payment_id = ? ORDER BY block_number, log_index",
    ),
    transfersOfMany: db.prepare(
      "SELECT * FROM transfers WHERE payment_id IN (SELECT value FROM json_each(?)) ORDER BY payment_id, block_number, log_index",
    ),
    getCursor: db.prepare("SELECT * FROM chain_cursor WHERE id = 1"),
    moveCursor: db.prepare(
      "UPDATE chain_cursor SET block_number = @block_number, block_hash = @block_hash, head_number = @head_number, updated_at = @updated_at WHERE id = 1",
    ),
    upsertCursor: db.prepare(`INSERT INTO chain_cursor
      (id, chain_id, token, block_number, block_hash, head_number, updated_at)
      VALUES (1, @chain_id, @token, @block_number, @block_hash, @head_number, @updated_at)
      ON CONFLICT (id) DO UPDATE SET block_number = excluded.block_number,
        block_hash = excluded.block_hash, head_number = excluded.head_number,
        updated_at = excluded.updated_at`),
    setHead: db.prepare(
      "UPDATE chain_cursor SET head_number = @head_number, updated_at = @updated_at WHERE id = 1",
    ),
  };

  // NOTE: a handful of listing shapes (status × since × cursor), prepared on first use.
  const listStatements = new Map<string, ReturnType<Db["prepare"]>>();

  return {
    /** Takes the next derivation index. Call inside the transaction that inserts the payment. */
    allocateIndex(): number {
      const row = statements.nextIndex.get() as { value: number } | undefined;
      if (!row) throw new Error("derivation counter missing");
      return row.value;
    },
    /** Inserts the payment and returns its whole row (defaults included). */
    insertPayment(row: NewPaymentRow): PaymentRow {
      return statements.insertPayment.get(row) as PaymentRow;
    },
    getPayment(id: string): PaymentRow | undefined {
      return statements.getPayment.get(id) as PaymentRow | undefined;
    },
    /** Several payments in one query (any order; unknown ids are left out). */
    getPaymentsMany(ids: readonly string[]): PaymentRow[] {
      if (ids.length === 0) return [];
      return statements.getPaymentsMany.all(JSON.stringify(ids)) as PaymentRow[];
    },
    getPaymentByOrderId(orderId: string): PaymentRow | undefined {
      return statements.getPaymentByOrderId.get(orderId) as PaymentRow | undefined;
    },
    /** Sets cancelled_at unless already set; the caller re-decides the lifecycle. */
    setCancelled({ id, now }: { id: string; now: number }): void {
      statements.setCancelled.run({ id, now });
    },
    /**
     * Payments newest first, (created_at, id) descending, strictly after
     * `after` when given; only those in `status` and created at or after
     * `since` (UNIX ms) when given. One query.
     */
    listPayments({
      after,
      limit,
      status,
      since,
    }: {
      after: ListPosition | undefined;
      limit: number;
      status?: PaymentStatus | undefined;
      since?: number | undefined;
    }): PaymentRow[] {
      const where = [
        after ? "(created_at, id) < (@after_created_at, @after_id)" : undefined,
        status === undefined ? undefined : "status = @status",
        since === undefined ? undefined : "created_at >= @since",
      ].filter((condition) => condition !== undefined);
      const sql = `SELECT * FROM payments${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, id DESC LIMIT @limit`;
      let statement = listStatements.get(sql);
      if (!statement) {
        statement = db.prepare(sql);
        listStatements.set(sql, statement);
      }
      return statement.all({
        ...(after ? { after_created_at: after.created_at, after_id: after.id } : {}),
        ...(status === undefined ? {} : { status }),
        ...(since === undefined ? {} : { since }),
        limit,
      }) as PaymentRow[];
    },
    /** How many payments have each status (statuses with none are missing). */
    countByStatus(): Partial<Record<PaymentStatus, number>> {
      const rows = statements.countByStatus.all() as Array<{
        status: PaymentStatus;
        count: number;
      }>;
      return Object.fromEntries(rows.map((row) => [row.status, row.count]));
    },
    /** Open (waiting or seen) payments whose deadline is at or before `now`, soonest first. */
    dueDeadlines(now: number): PaymentRow[] {
      return statements.dueDeadlines.all(now) as PaymentRow[];
    },
    /** The nearest deadline of an open payment after `now` (UNIX ms), if any. */
    nextDeadline(now: number): number | undefined {
      return (statements.nextDeadline.get(now) as number | null) ?? undefined;
    },
    paymentIdByAddress(address: string): string | undefined {
      return statements.paymentIdByAddress.get(address) as string | undefined;
    },
    /** The payment paying to `address` and its deadline (UNIX ms), if any. */
    paymentWindowByAddress(address: string): { id: string; expires_at: number } | undefined {
      return statements.paymentWindowByAddress.get(address) as
        | { id: string; expires_at: number }
        | undefined;
    },
    /** Ids of payments that have received their amount but are not paid (confirming). */
    confirmingPaymentIds(): string[] {
      return statements.confirming.all() as string[];
    },
    /** Stores what the lifecycle decided for payment `id`. */
    updateLifecycle(id: string, fields: LifecycleFields): void {
      statements.updateLifecycle.run({ ...fields, id });
    },
    /** Records a transfer; false if (tx_hash, log_index) was already recorded. */
    insertTransfer(row: TransferRow): boolean {
      return statements.insertTransfer.run(row).changes === 1;
    },
    /** A payment's transfers in chain order. */
    transfersOf(paymentId: string): TransferRow[] {
      return statements.transfersOf.all(paymentId) as TransferRow[];
    },
    /** The transfers of several payments in one query, each payment's in chain order. */
    transfersOfMany(paymentIds: readonly string[]): Map<string, TransferRow[]> {
      const byPayment = new Map<string, TransferRow[]>();
      if (paymentIds.length === 0) return byPayment;
      for (const row of statements.transfersOfMany.all(
        JSON.stringify(paymentIds),
      ) as TransferRow[]) {
        const list = byPayment.get(row.payment_id);
        if (list) list.push(row);
        else byPayment.set(row.payment_id, [row]);
      }
      return byPayment;
    },
    /**
     * Forgets everything above block `number` (a reorg replaced it) and
     * returns the payments whose transfers went with it.
     */
    forgetAbove(number: number): string[] {
      const affected = statements.paymentsWithTransfersAbove.all(number) as string[];
      statements.deleteTransfersAbove.run(number);
      statements.deleteBlocksAbove.run(number);
      return affected;
    },
    rememberBlock(row: BlockRow): void {
      statements.upsertBlock.run(row);
    },
    blockHash(number: number): string | undefined {
      return statements.blockHash.get(number) as string | undefined;
    },
    pruneBlocksBelow(number: number): void {
      statements.pruneBlocksBelow.run(number);
    },
    moveCursor(
      row: Pick<CursorRow, "block_number" | "block_hash" | "head_number" | "updated_at">,
    ): void {
      statements.moveCursor.run(row);
    },
    getCursor(): CursorRow | undefined {
      return statements.getCursor.get() as CursorRow | undefined;
    },
    setCursor(row: CursorRow): void {
      statements.upsertCursor.run(row);
    },
    setHead(head: number, now: number): void {
      statements.setHead.run({ head_number: head, updated_at: now });
    },
  };
}
