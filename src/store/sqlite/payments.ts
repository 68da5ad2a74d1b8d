/**
 * The payment queries on SQLite ({@link PaymentStore} in store/storage.ts
 * documents each): payments, transfers, the scan cursors (one per network)
 * and the derivation counter. Statements are prepared once; callers own
 * transactions.
 */
import {
  type BlockRow,
  COUNT_BY_STATUS_SQL,
  type CursorRow,
  type DeadlinePage,
  LEGACY_NETWORK,
  type LifecycleFields,
  type ListPosition,
  type NewPaymentRow,
  type PaymentStatus,
  type PaymentStore,
  type StoredPayment,
  type TransferRow,
} from "../storage.ts";
import type { Db } from "./index.ts";

export function createPaymentStore(db: Db): PaymentStore {
  const statements = {
    nextIndex: db.prepare(
      "UPDATE counters SET value = value + 1 WHERE name = 'derivation_index' RETURNING value - 1 AS value",
    ),
    nextIndexes: db.prepare(
      "UPDATE counters SET value = value + @count WHERE name = 'derivation_index' RETURNING value - @count AS value",
    ),
    getPaymentsByOrderIds: db.prepare(
      "SELECT * FROM payments WHERE order_id IN (SELECT value FROM json_each(?))",
    ),
    insertPayment: db.prepare(`INSERT INTO payments
      (id, amount, derivation_index, address, data, postback_url, created_at, expires_at,
       order_id, description, return_url, cancel_url, postback_events, networks)
      VALUES (@id, @amount, @derivation_index, @address, @data, @postback_url, @created_at, @expires_at,
       @order_id, @description, @return_url, @cancel_url, @postback_events, @networks)
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
      "SELECT * FROM payments INDEXED BY payments_open_deadlines WHERE status IN ('waiting', 'seen') AND expires_at <= ? ORDER BY expires_at, id",
    ),
    // NOTE: one range of payments_open_deadlines (expires_at, id): the row
    // value comparison starts the page after the last one's position.
    // INDEXED BY: without statistics the planner takes payments_by_status
    // (every open payment's entry) and sorts them, for each page.
    dueDeadlinesPage: db.prepare(`SELECT * FROM payments INDEXED BY payments_open_deadlines
      WHERE status IN ('waiting', 'seen')
      AND expires_at <= @now AND (expires_at, id) > (@after_at, @after_id)
      ORDER BY expires_at, id LIMIT @limit`),
    nextDeadline: db
      .prepare(
        "SELECT min(expires_at) FROM payments INDEXED BY payments_open_deadlines WHERE status IN ('waiting', 'seen') AND expires_at > ?",
      )
      .pluck(),
    updateLifecycle: db.prepare(`UPDATE payments SET status = @status,
      seen_at = @seen_at, paid_at = @paid_at, tx_hash = @tx_hash,
      block_number = @block_number, paid_amount = @paid_amount, late_amount = @late_amount,
      paid_late_at = @paid_late_at, reorged_after_paid_at = @reorged_after_paid_at,
      network = @network, block_network = @block_network,
      wrong_network_amount = @wrong_network_amount
      WHERE id = @id`),
    insertTransfer: db.prepare(`INSERT OR IGNORE INTO transfers
      (network, tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id, recorded_at, block_timestamp)
      VALUES (@network, @tx_hash, @log_index, @block_number, @block_hash, @from_address, @to_address, @value, @payment_id, @recorded_at, @block_timestamp)`),
    paymentsWithTransfersAbove: db
      .prepare("SELECT DISTINCT payment_id FROM transfers WHERE network = ? AND block_number > ?")
      .pluck(),
    deleteTransfersAbove: db.prepare(
      "DELETE FROM transfers WHERE network = ? AND block_number > ?",
    ),
    upsertBlock: db.prepare(
      "INSERT OR REPLACE INTO blocks (network, number, hash, parent_hash, timestamp) VALUES (@network, @number, @hash, @parent_hash, @timestamp)",
    ),
    blockHash: db.prepare("SELECT hash FROM blocks WHERE network = ? AND number = ?").pluck(),
    deleteBlocksAbove: db.prepare("DELETE FROM blocks WHERE network = ? AND number > ?"),
    pruneBlocksBelow: db.prepare("DELETE FROM blocks WHERE network = ? AND number < ?"),
    transfersOf: db.prepare(
      "SELECT * FROM transfers WHERE payment_id = ? ORDER BY block_number, log_index",
    ),
    transfersOfMany: db.prepare(
      "SELECT * FROM transfers WHERE payment_id IN (SELECT value FROM json_each(?)) ORDER BY payment_id, block_number, log_index",
    ),
    getCursor: db.prepare("SELECT * FROM chain_cursor WHERE network = ?"),
    cursors: db.prepare("SELECT * FROM chain_cursor ORDER BY id"),
    heads: db.prepare("SELECT network, head_number FROM chain_cursor"),
    moveCursor: db.prepare(
      "UPDATE chain_cursor SET block_number = @block_number, block_hash = @block_hash, head_number = @head_number, updated_at = @updated_at WHERE network = @network",
    ),
    upsertCursor: db.prepare(`INSERT INTO chain_cursor
      (network, chain_id, token, block_number, block_hash, head_number, updated_at)
      VALUES (@network, @chain_id, @token, @block_number, @block_hash, @head_number, @updated_at)
      ON CONFLICT (network) DO UPDATE SET block_number = excluded.block_number,
        block_hash = excluded.block_hash, head_number = excluded.head_number,
        updated_at = excluded.updated_at`),
    setHead: db.prepare(
      "UPDATE chain_cursor SET head_number = @head_number, updated_at = @updated_at WHERE network = @network",
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
    /**
     * Takes `count` consecutive derivation indexes and returns the first.
     * Call inside the transaction that inserts their payments.
     */
    allocateIndexes(count: number): number {
      const row = statements.nextIndexes.get({ count }) as { value: number } | undefined;
      if (!row) throw new Error("derivation counter missing");
      return row.value;
    },
    /** Inserts payments and returns their whole rows, in the order given. */
    insertPayments(rows: readonly NewPaymentRow[]): StoredPayment[] {
      return rows.map((row) => statements.insertPayment.get(row) as StoredPayment);
    },
    /** The payments holding these order ids (any order; ids of none are left out). */
    getPaymentsByOrderIds(orderIds: readonly string[]): StoredPayment[] {
      if (orderIds.length === 0) return [];
      return statements.getPaymentsByOrderIds.all(JSON.stringify(orderIds)) as StoredPayment[];
    },
    /** Inserts the payment and returns its whole row (defaults included). */
    insertPayment(row: NewPaymentRow): StoredPayment {
      return statements.insertPayment.get(row) as StoredPayment;
    },
    getPayment(id: string): StoredPayment | undefined {
      return statements.getPayment.get(id) as StoredPayment | undefined;
    },
    /**
     * Reads payment `id` to re-decide it: inside a transaction, no other
     * transaction changes the row until this one ends. PostgreSQL takes a
     * row lock (`FOR UPDATE`); here it is `getPayment`, since a SQLite
     * transaction holds the whole database (BEGIN IMMEDIATE) and
     * transactions run one after another.
     */
    lockPayment(id: string): StoredPayment | undefined {
      return statements.getPayment.get(id) as StoredPayment | undefined;
    },
    /** Several payments in one query (any order; unknown ids are left out). */
    getPaymentsMany(ids: readonly string[]): StoredPayment[] {
      if (ids.length === 0) return [];
      return statements.getPaymentsMany.all(JSON.stringify(ids)) as StoredPayment[];
    },
    getPaymentByOrderId(orderId: string): StoredPayment | undefined {
      return statements.getPaymentByOrderId.get(orderId) as StoredPayment | undefined;
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
    }): StoredPayment[] {
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
      }) as StoredPayment[];
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
    dueDeadlines(now: number, page?: DeadlinePage): StoredPayment[] {
      if (page === undefined) return statements.dueDeadlines.all(now) as StoredPayment[];
      return statements.dueDeadlinesPage.all({
        now,
        after_at: page.after?.expires_at ?? Number.MIN_SAFE_INTEGER,
        after_id: page.after?.id ?? "",
        limit: page.limit,
      }) as StoredPayment[];
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
     * Forgets everything of `network` above block `number` (a reorg replaced
     * it) and returns the payments whose transfers went with it.
     */
    forgetAbove(network: string, number: number): string[] {
      const affected = statements.paymentsWithTransfersAbove.all(network, number) as string[];
      statements.deleteTransfersAbove.run(network, number);
      statements.deleteBlocksAbove.run(network, number);
      return affected;
    },
    rememberBlock(network: string, row: BlockRow): void {
      statements.upsertBlock.run({ ...row, network });
    },
    blockHash(network: string, number: number): string | undefined {
      return statements.blockHash.get(network, number) as string | undefined;
    },
    pruneBlocksBelow(network: string, number: number): void {
      statements.pruneBlocksBelow.run(network, number);
    },
    moveCursor(
      network: string,
      row: Pick<CursorRow, "block_number" | "block_hash" | "head_number" | "updated_at">,
    ): void {
      statements.moveCursor.run({ ...row, network });
    },
    /** The scan cursor of `network`; undefined before its first scan. */
    getCursor(network: string): CursorRow | undefined {
      return statements.getCursor.get(network) as CursorRow | undefined;
    },
    /**
     * The scan cursor of `network`, locked until the transaction ends: a
     * batch moves it only from where it read it (compare-and-set), so a
     * deposed leader writing late finds it moved. SQLite's transactions
     * already run one at a time; on PostgreSQL this is `SELECT … FOR UPDATE`.
     */
    lockCursor(network: string): CursorRow | undefined {
      return statements.getCursor.get(network) as CursorRow | undefined;
    },
    /** Every network's cursor, oldest first (networks no longer configured included). */
    cursors(): CursorRow[] {
      return statements.cursors.all() as CursorRow[];
    },
    /** The head each network's cursor last recorded. */
    heads(): Map<string, number> {
      const rows = statements.heads.all() as Array<{ network: string; head_number: number }>;
      return new Map(rows.map((row) => [row.network, row.head_number]));
    },
    /** Creates (or moves) a network's cursor; without `network`, the single chain's. */
    setCursor(row: Omit<CursorRow, "network"> & { network?: string }): void {
      statements.upsertCursor.run({ ...row, network: row.network ?? LEGACY_NETWORK });
    },
    setHead(network: string, head: number, now: number): void {
      statements.setHead.run({ network, head_number: head, updated_at: now });
    },
  };
}
