/**
 * Payment logic: creating payments, and turning the chain watcher's batches
 * into seen/paid state and postback events, each batch in one transaction
 * with the scan cursor.
 */
import { randomBytes } from "node:crypto";
import type { AddressDeriver } from "../addresses/index.ts";
import type {
  BlockHeader,
  ChainSink,
  ScanBatch,
  ScanCursor,
  TokenTransfer,
} from "../chain/types.ts";
import type { Clock } from "../internal/clock.ts";
import { toUnixSeconds } from "../internal/clock.ts";
import { ChainMismatchError } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import { createEventStore, type EventStore } from "../store/events.ts";
import type { Db } from "../store/index.ts";
import { createPaymentStore, type PaymentRow, type PaymentStore } from "../store/payments.ts";
import { formatAmount } from "./amount.ts";
import { OrderIdConflictError } from "./errors.ts";
import { confirmationsOf, evaluatePayment, isLate } from "./evaluate.ts";
import { generatePaymentId, type IdGenerator } from "./ids.ts";

export type PaymentStatus = "waiting" | "seen" | "paid" | "expired" | "cancelled";

/** One received transfer as status.json shows it. */
export type TransferView = {
  tx_hash: string;
  amount: string;
  block_number: number;
  confirmations: number;
  /** In a block after the payment's deadline. */
  late: boolean;
};

/** GET /:id/status.json: the original fields first, then the additive ones. */
export type StatusView = {
  address: string;
  amount: string;
  seen_at: number | null;
  paid_at: number | null;
  tx_hash: string | null;
  status: PaymentStatus;
  paid_amount: string;
  confirmations: number;
  required_confirmations: number;
  expires_at: number;
  /** Funds arrived after the deadline. */
  late: boolean;
  /** Late funds completed the payment: it stays expired; the shop decides. */
  paid_late: boolean;
  late_amount: string;
  overpaid_amount: string;
  /** A reorg removed a transfer after the payment was marked paid. */
  reorged_after_paid: boolean;
  transfers: TransferView[];
};

/** What start_payment asks for; the optional fields are the merchant API's (issue 6). */
export type NewPayment = {
  amount: bigint;
  data: string | null;
  postbackUrl: string | null;
  /** The shop's order id: a second create with it returns the first payment. */
  orderId?: string | null | undefined;
  description?: string | null | undefined;
  returnUrl?: string | null | undefined;
  cancelUrl?: string | null | undefined;
  /** Seconds from now until it expires; default `expiresAfterSeconds`. */
  expiresInSeconds?: number | undefined;
};

export type Payments = {
  /**
   * Creates a payment with a fresh deposit address (index and row in one
   * transaction). With an `orderId` already used for the same amount it
   * returns that payment (`created: false`, no index consumed); for another
   * amount it throws OrderIdConflictError.
   */
  create(params: NewPayment): PaymentRow & { created: boolean };
  /**
   * The same as `create`, but grouped with the other creates of this turn of
   * the event loop into one transaction: one fsync for all of them (group
   * commit). Resolves once the payment is committed, so it is as durable.
   */
  createDurably(params: NewPayment): Promise<PaymentRow & { created: boolean }>;
  get(id: string): PaymentRow | undefined;
  status(row: PaymentRow): PaymentStatus;
  view(id: string): StatusView | undefined;
  /**
   * status.json's body for `id` (undefined: no such payment), served from a
   * cache that any write to the database (by this daemon or another
   * process) or the payment's deadline passing invalidates.
   */
  statusJson(id: string): string | undefined;
  /** The chain watcher's consumer. */
  sink: ChainSink;
  store: PaymentStore;
  events: EventStore;
};

/**
 * The moment after which funds are late (UNIX ms): expires_at, or the
 * cancel if the shop cancelled earlier.
 */
function deadlineOf(row: Pick<PaymentRow, "expires_at" | "cancelled_at">): number {
  return row.cancelled_at === null ? row.expires_at : Math.min(row.expires_at, row.cancelled_at);
}

/** Status bodies cached at most (then the cache starts over): a few MB. */
const STATUS_CACHE_SIZE = 10_000;

export const EVENT_PAYMENT_PAID = "payment.paid";
export const EVENT_PAYMENT_PAID_LATE = "payment.paid_late";
export const EVENT_PAYMENT_REORGED_AFTER_PAID = "payment.reorged_after_paid";

export function createPayments({
  db,
  deriver,
  clock,
  logger,
  chainId,
  token,
  decimals,
  requiredConfirmations,
  expiresAfterSeconds,
  monitorForSeconds = 7 * 86_400,
  keepBlocks = 256,
  generateId = generatePaymentId,
  onEvents = () => {},
  onGroupCommit = () => {},
}: {
  db: Db;
  /** With `prefetch` (an address pool), told the next index after each create. */
  deriver: AddressDeriver & { prefetch?(nextIndex: number): void };
  clock: Clock;
  logger: Logger;
  chainId: number;
  token: string;
  decimals: number;
  requiredConfirmations: number;
  expiresAfterSeconds: number;
  /** How long after expiry late funds to an address are still recorded. */
  monitorForSeconds?: number;
  /** Recent block headers kept for reorg checks. */
  keepBlocks?: number;
  generateId?: IdGenerator;
  /** Called after a commit that queued postback events. */
  onEvents?: () => void;
  /** Called after each group commit of start_payment (a burst of checkouts is under way). */
  onGroupCommit?: () => void;
}): Payments {
  const store = createPaymentStore(db);
  const events = createEventStore(db);
  const log = logger.child({ module: "payments" });
  // NOTE: total_changes() counts this connection's writes, data_version the
  // other connections' (CLI commands): together they change on any write.
  const versionQuery = db
    .prepare("SELECT total_changes() || ':' || data_version FROM pragma_data_version()")
    .pluck();
  const dataVersion = () => versionQuery.get() as string;
  const statusCache = new Map<string, { body: string; version: string; validUntil: number }>();

  const insertPayment = db.transaction((params: NewPayment) => {
    // NOTE: the order-id lookup and the insert share one transaction, so
    // duplicates (even concurrent ones) get the first payment and consume no index.
    const orderId = params.orderId ?? null;
    if (orderId !== null) {
      const existing = store.getPaymentByOrderId(orderId);
      if (existing) {
        if (BigInt(existing.amount) !== params.amount) throw new OrderIdConflictError(orderId);
        return { ...existing, created: false };
      }
    }
    const now = clock.now();
    const index = store.allocateIndex();
    const row = {
      id: generateId(),
      amount: params.amount.toString(),
      derivation_index: index,
      address: deriver.derive(index),
      data: params.data,
      postback_url: params.postbackUrl,
      created_at: now,
      expires_at: now + (params.expiresInSeconds ?? expiresAfterSeconds) * 1000,
      order_id: orderId,
      description: params.description ?? null,
      return_url: params.returnUrl ?? null,
      cancel_url: params.cancelUrl ?? null,
    };
    return { ...store.insertPayment(row), created: true };
  });

  function createOne(params: NewPayment): PaymentRow & { created: boolean } {
    // A clash of 64 random bits is next to impossible; retry it rather than fail the shop.
    for (let attempt = 0; ; attempt++) {
      try {
        return insertPayment(params);
      } catch (error) {
        const code = (error as { code?: string }).code;
        // UNIQUE: another connection inserted the same order id first; the retry finds it.
        if (
          attempt < 3 &&
          (code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE")
        )
          continue;
        throw error;
      }
    }
  }

  type Queued = {
    params: NewPayment;
    resolve(row: PaymentRow & { created: boolean }): void;
    reject(error: unknown): void;
  };
  const queue: Queued[] = [];
  // NOTE: each create is a nested transaction (a savepoint), so one failing
  // (an order_id conflict) rolls back alone; the outer commit is the one fsync.
  const insertAll = db.transaction((batch: Queued[]) =>
    batch.map((item) => {
      try {
        return { row: createOne(item.params) };
      } catch (error) {
        return { error };
      }
    }),
  );
  function flushQueue() {
    const batch = queue.splice(0);
    let results: ReturnType<typeof insertAll>;
    try {
      results = insertAll(batch);
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    let next = -1;
    results.forEach((result, i) => {
      const item = batch[i] as Queued;
      if ("row" in result && result.row) {
        next = Math.max(next, result.row.derivation_index + 1);
        item.resolve(result.row);
      } else {
        item.reject((result as { error: unknown }).error);
      }
    });
    if (next >= 0) deriver.prefetch?.(next);
    onGroupCommit();
  }

  function status(row: PaymentRow, now = clock.now()): PaymentStatus {
    if (row.paid_at !== null) return "paid";
    if (row.cancelled_at !== null) return "cancelled";
    // Fully received in time but still confirming: it proceeds to paid after the deadline.
    const inTime = BigInt(row.paid_amount) - BigInt(row.late_amount);
    if (now >= row.expires_at && inTime < BigInt(row.amount)) return "expired";
    return row.seen_at !== null ? "seen" : "waiting";
  }

  /** Queues a postback event in the current transaction, if the shop gave a URL. */
  function queueEvent(payment: PaymentRow, type: string, now: number): boolean {
    if (payment.postback_url === null) return false;
    events.insert({
      id: `evt_${randomBytes(12).toString("hex")}`,
      payment_id: payment.id,
      type,
      url: payment.postback_url,
      created_at: now,
      next_attempt_at: now,
    });
    return true;
  }

  /**
   * Recomputes one payment from its transfers; returns how many events it
   * queued. `afterReorg`: some of its transfers were just orphaned.
   */
  function reevaluate(paymentId: string, head: number, now: number, afterReorg = false): number {
    const payment = store.getPayment(paymentId);
    if (!payment) return 0;
    const transfers = store.transfersOf(paymentId);
    const evaluation = evaluatePayment({
      amount: BigInt(payment.amount),
      transfers: transfers.map((t) => ({
        txHash: t.tx_hash,
        blockNumber: t.block_number,
        logIndex: t.log_index,
        value: BigInt(t.value),
        blockTimestamp: t.block_timestamp,
      })),
      head,
      requiredConfirmations,
      expiresAt: deadlineOf(payment),
    });
    const amounts = {
      paid_amount: evaluation.paidAmount.toString(),
      late_amount: evaluation.lateAmount.toString(),
    };
    const fields = { payment_id: paymentId };
    let queued = 0;

    if (payment.paid_at !== null) {
      // Paid is never silently undone. If a reorg took the completing
      // transfer (or enough funds), flag it loudly and tell the shop.
      let reorged = payment.reorged_after_paid_at;
      const kept = transfers.some((t) => t.tx_hash === payment.tx_hash);
      if (afterReorg && reorged === null && (!kept || evaluation.completing === undefined)) {
        reorged = now;
        log.error(
          { ...fields, tx_hash: payment.tx_hash, paid_amount: amounts.paid_amount },
          "reorg removed a transfer of a payment already marked paid: check it before shipping",
        );
        if (queueEvent(payment, EVENT_PAYMENT_REORGED_AFTER_PAID, now)) queued++;
      }
      store.updateProgress({ ...payment, ...amounts, reorged_after_paid_at: reorged });
      return queued;
    }

    // Only orphaned transfers made it seen: back to waiting.
    const seenAt = transfers.length === 0 ? null : (payment.seen_at ?? now);
    if (payment.seen_at === null && seenAt !== null) {
      log.info({ ...fields, block_number: evaluation.referenceBlock }, "payment seen");
    } else if (payment.seen_at !== null && seenAt === null) {
      log.warn(fields, "reorg orphaned every transfer of this payment: waiting again");
    }
    // A cancelled payment never becomes paid; what arrives after the cancel
    // is recorded as late funds, as for an expired payment.
    const completing =
      evaluation.paid && payment.cancelled_at === null ? evaluation.completing : undefined;
    let paidLateAt = payment.paid_late_at;
    if (!completing && evaluation.paidLate && paidLateAt === null) {
      paidLateAt = now;
      log.warn(
        { ...fields, tx_hash: evaluation.lateCompleting?.txHash },
        "late funds completed an expired payment: it stays expired",
      );
      if (queueEvent(payment, EVENT_PAYMENT_PAID_LATE, now)) queued++;
    }
    store.updateProgress({
      id: paymentId,
      seen_at: seenAt,
      paid_at: completing ? now : null,
      tx_hash: completing?.txHash ?? null,
      block_number: evaluation.referenceBlock ?? null,
      ...amounts,
      paid_late_at: paidLateAt,
      reorged_after_paid_at: payment.reorged_after_paid_at,
    });
    if (completing) {
      log.info(
        { ...fields, tx_hash: completing.txHash, block_number: completing.blockNumber, ...amounts },
        "payment paid",
      );
      if (queueEvent(payment, EVENT_PAYMENT_PAID, now)) queued++;
    }
    return queued;
  }

  function reevaluateAll(
    touched: Iterable<string>,
    head: number,
    now: number,
    afterReorg = false,
  ): number {
    const ids = new Set(touched);
    let queued = 0;
    for (const id of ids) queued += reevaluate(id, head, now, afterReorg);
    for (const id of store.confirmingPaymentIds()) {
      if (!ids.has(id)) queued += reevaluate(id, head, now);
    }
    return queued;
  }

  function rememberBlocks(blocks: readonly BlockHeader[], newest: number) {
    for (const block of blocks) {
      store.rememberBlock({
        number: block.number,
        hash: block.hash,
        parent_hash: block.parentHash,
        timestamp: block.timestamp,
      });
    }
    store.pruneBlocksBelow(newest - keepBlocks);
  }

  const applyBatch = db.transaction((batch: ScanBatch): number => {
    const now = clock.now();
    const touched = new Set<string>();
    for (const transfer of batch.transfers) {
      const payment = store.paymentWindowByAddress(transfer.to);
      if (payment === undefined) continue;
      const time = transfer.blockTimestamp;
      if (time !== undefined && time * 1000 > payment.expires_at + monitorForSeconds * 1000) {
        log.debug(
          { payment_id: payment.id, tx_hash: transfer.txHash },
          "transfer after the monitoring window: ignored",
        );
        continue;
      }
      const inserted = store.insertTransfer({
        tx_hash: transfer.txHash,
        log_index: transfer.logIndex,
        block_number: transfer.blockNumber,
        block_hash: transfer.blockHash,
        from_address: transfer.from,
        to_address: transfer.to,
        value: transfer.value.toString(),
        payment_id: payment.id,
        recorded_at: now,
        block_timestamp: time ?? null,
      });
      if (inserted) touched.add(payment.id);
    }
    const last = batch.blocks.at(-1);
    if (!last || last.number !== batch.toBlock)
      throw new Error("batch without its last block header");
    rememberBlocks(batch.blocks, batch.toBlock);
    store.moveCursor({
      block_number: batch.toBlock,
      block_hash: last.hash,
      head_number: batch.head,
      updated_at: now,
    });
    return reevaluateAll(touched, batch.head, now);
  });

  const rewind = db.transaction(
    (ancestor: { number: number; hash: string | null }, head: number): number => {
      const now = clock.now();
      const affected = store.forgetAbove(ancestor.number);
      store.moveCursor({
        block_number: ancestor.number,
        block_hash: ancestor.hash,
        head_number: head,
        updated_at: now,
      });
      return reevaluateAll(affected, head, now, true);
    },
  );

  const applyHead = db.transaction((head: number): number => {
    const now = clock.now();
    store.setHead(head, now);
    return reevaluateAll([], head, now);
  });

  const sink: ChainSink = {
    cursor(): ScanCursor | undefined {
      const row = store.getCursor();
      if (!row) return undefined;
      if (row.chain_id !== chainId || row.token !== token) {
        throw new ChainMismatchError(
          `the database was written for chain ${row.chain_id} token ${row.token}, not chain ${chainId} token ${token}: use a new database.path`,
        );
      }
      return { blockNumber: row.block_number, blockHash: row.block_hash };
    },
    initCursor: db.transaction((block: BlockHeader | { number: -1; hash: null }, head: number) => {
      if ("parentHash" in block) rememberBlocks([block], block.number);
      store.setCursor({
        chain_id: chainId,
        token,
        block_number: block.number,
        block_hash: block.hash,
        head_number: head,
        updated_at: clock.now(),
      });
    }),
    filter(transfers: readonly TokenTransfer[]) {
      return transfers.filter((t) => store.paymentIdByAddress(t.to) !== undefined);
    },
    blockHash: (number) => store.blockHash(number),
    applyBatch(batch) {
      if (applyBatch(batch) > 0) onEvents();
    },
    rewind(ancestor, head) {
      if (rewind(ancestor, head) > 0) onEvents();
    },
    applyHead(head) {
      if (applyHead(head) > 0) onEvents();
    },
  };

  return {
    create(params) {
      const row = createOne(params);
      deriver.prefetch?.(row.derivation_index + 1);
      return row;
    },
    createDurably(params) {
      return new Promise((resolve, reject) => {
        queue.push({ params, resolve, reject });
        if (queue.length === 1) setImmediate(flushQueue);
      });
    },
    get: (id) => store.getPayment(id),
    status: (row) => status(row),
    view,
    statusJson(id) {
      const version = dataVersion();
      const now = clock.now();
      const hit = statusCache.get(id);
      if (hit && hit.version === version && now < hit.validUntil) return hit.body;
      const row = store.getPayment(id);
      if (!row) return undefined;
      const body = JSON.stringify(viewOf(row));
      if (statusCache.size >= STATUS_CACHE_SIZE) statusCache.clear();
      // The status turns "expired" at the deadline with no write: the entry
      // must not outlive it.
      statusCache.set(id, {
        body,
        version,
        validUntil: now < row.expires_at ? row.expires_at : Infinity,
      });
      return body;
    },
    sink,
    store,
    events,
  };

  function view(id: string): StatusView | undefined {
    const row = store.getPayment(id);
    return row ? viewOf(row) : undefined;
  }

  function viewOf(row: PaymentRow): StatusView {
    const head = store.getCursor()?.head_number ?? 0;
    const amount = BigInt(row.amount);
    const paid = BigInt(row.paid_amount);
    const late = BigInt(row.late_amount);
    const transfers = row.seen_at === null ? [] : store.transfersOf(row.id);
    return {
      address: row.address,
      amount: formatAmount(amount, decimals),
      seen_at: row.seen_at === null ? null : toUnixSeconds(row.seen_at),
      paid_at: row.paid_at === null ? null : toUnixSeconds(row.paid_at),
      tx_hash: row.tx_hash,
      status: status(row),
      paid_amount: formatAmount(paid, decimals),
      confirmations: confirmationsOf(row.block_number, head),
      required_confirmations: requiredConfirmations,
      expires_at: toUnixSeconds(row.expires_at),
      late: late > 0n,
      paid_late: row.paid_late_at !== null,
      late_amount: formatAmount(late, decimals),
      overpaid_amount: formatAmount(paid > amount ? paid - amount : 0n, decimals),
      reorged_after_paid: row.reorged_after_paid_at !== null,
      transfers: transfers.map((t) => ({
        tx_hash: t.tx_hash,
        amount: formatAmount(BigInt(t.value), decimals),
        block_number: t.block_number,
        confirmations: confirmationsOf(t.block_number, head),
        late: isLate({ blockTimestamp: t.block_timestamp }, deadlineOf(row)),
      })),
    };
  }
}
