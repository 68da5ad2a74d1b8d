/**
 * Payment logic: creating payments, and turning the chain watcher's batches
 * into seen/paid state and postback events, each batch in one transaction
 * with the scan cursor.
 */
import { randomBytes } from "node:crypto";
import type { AddressDeriver } from "../addresses/index.ts";
import type { ChainSink, ScanBatch, ScanCursor } from "../chain/types.ts";
import type { Clock } from "../internal/clock.ts";
import { toUnixSeconds } from "../internal/clock.ts";
import { ChainMismatchError } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import { createEventStore, type EventStore } from "../store/events.ts";
import type { Db } from "../store/index.ts";
import { createPaymentStore, type PaymentRow, type PaymentStore } from "../store/payments.ts";
import { formatAmount } from "./amount.ts";
import { OrderIdConflictError } from "./errors.ts";
import { confirmationsOf, evaluatePayment } from "./evaluate.ts";
import { generatePaymentId, type IdGenerator } from "./ids.ts";

export type PaymentStatus = "waiting" | "seen" | "paid" | "expired" | "cancelled";

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
  get(id: string): PaymentRow | undefined;
  status(row: PaymentRow): PaymentStatus;
  view(id: string): StatusView | undefined;
  /** The chain watcher's consumer. */
  sink: ChainSink;
  store: PaymentStore;
  events: EventStore;
};

export const EVENT_PAYMENT_PAID = "payment.paid";

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
  generateId = generatePaymentId,
  onEvents = () => {},
}: {
  db: Db;
  deriver: AddressDeriver;
  clock: Clock;
  logger: Logger;
  chainId: number;
  token: string;
  decimals: number;
  requiredConfirmations: number;
  expiresAfterSeconds: number;
  generateId?: IdGenerator;
  /** Called after a commit that queued postback events. */
  onEvents?: () => void;
}): Payments {
  const store = createPaymentStore(db);
  const events = createEventStore(db);
  const log = logger.child({ module: "payments" });

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
    store.insertPayment(row);
    return {
      ...row,
      seen_at: null,
      paid_at: null,
      tx_hash: null,
      block_number: null,
      paid_amount: "0",
      cancelled_at: null,
      created: true,
    };
  });

  function status(row: PaymentRow, now = clock.now()): PaymentStatus {
    if (row.paid_at !== null) return "paid";
    if (row.cancelled_at !== null) return "cancelled";
    // Fully received but still confirming: it proceeds to paid even past the deadline.
    const received = BigInt(row.paid_amount) >= BigInt(row.amount);
    if (now >= row.expires_at && !received) return "expired";
    return row.seen_at !== null ? "seen" : "waiting";
  }

  /** Recomputes one payment from its transfers; returns true if it became paid. */
  function reevaluate(paymentId: string, head: number, now: number): boolean {
    const payment = store.getPayment(paymentId);
    if (!payment) return false;
    const transfers = store.transfersOf(paymentId);
    const evaluation = evaluatePayment({
      amount: BigInt(payment.amount),
      transfers: transfers.map((t) => ({
        txHash: t.tx_hash,
        blockNumber: t.block_number,
        logIndex: t.log_index,
        value: BigInt(t.value),
      })),
      head,
      requiredConfirmations,
    });
    const seenAt = payment.seen_at ?? (transfers.length > 0 ? now : null);
    if (payment.seen_at === null && seenAt !== null) {
      log.info({ payment_id: paymentId, block_number: evaluation.referenceBlock }, "payment seen");
    }
    if (payment.paid_at !== null) {
      // Already paid: later transfers only add to what was received (overpayment).
      store.updateProgress({ ...payment, paid_amount: evaluation.paidAmount.toString() });
      return false;
    }
    // A cancelled payment never becomes paid; its transfers are still recorded (late funds).
    const completing =
      evaluation.paid && payment.cancelled_at === null ? evaluation.completing : undefined;
    store.updateProgress({
      id: paymentId,
      seen_at: seenAt,
      paid_at: completing ? now : null,
      tx_hash: completing?.txHash ?? null,
      block_number: evaluation.referenceBlock ?? null,
      paid_amount: evaluation.paidAmount.toString(),
    });
    if (!completing) return false;
    log.info(
      {
        payment_id: paymentId,
        tx_hash: completing.txHash,
        block_number: completing.blockNumber,
        paid_amount: evaluation.paidAmount.toString(),
      },
      "payment paid",
    );
    if (payment.postback_url !== null) {
      events.insert({
        id: `evt_${randomBytes(12).toString("hex")}`,
        payment_id: paymentId,
        type: EVENT_PAYMENT_PAID,
        url: payment.postback_url,
        created_at: now,
        next_attempt_at: now,
      });
      return true;
    }
    return false;
  }

  function reevaluateAll(touched: Set<string>, head: number, now: number): number {
    for (const id of store.confirmingPaymentIds()) touched.add(id);
    let queued = 0;
    for (const id of touched) if (reevaluate(id, head, now)) queued++;
    return queued;
  }

  const applyBatch = db.transaction((batch: ScanBatch): number => {
    const now = clock.now();
    const touched = new Set<string>();
    for (const transfer of batch.transfers) {
      const paymentId = store.paymentIdByAddress(transfer.to);
      if (paymentId === undefined) continue;
      const inserted = store.insertTransfer({
        tx_hash: transfer.txHash,
        log_index: transfer.logIndex,
        block_number: transfer.blockNumber,
        block_hash: transfer.blockHash,
        from_address: transfer.from,
        to_address: transfer.to,
        value: transfer.value.toString(),
        payment_id: paymentId,
        recorded_at: now,
      });
      if (inserted) touched.add(paymentId);
    }
    store.setCursor({
      chain_id: chainId,
      token,
      block_number: batch.toBlock,
      block_hash: batch.toBlockHash,
      head_number: batch.head,
      updated_at: now,
    });
    return reevaluateAll(touched, batch.head, now);
  });

  const applyHead = db.transaction((head: number): number => {
    const now = clock.now();
    store.setHead(head, now);
    return reevaluateAll(new Set(), head, now);
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
    initCursor({ blockNumber, blockHash, head }) {
      store.setCursor({
        chain_id: chainId,
        token,
        block_number: blockNumber,
        block_hash: blockHash,
        head_number: head,
        updated_at: clock.now(),
      });
    },
    applyBatch(batch) {
      if (applyBatch(batch) > 0) onEvents();
    },
    applyHead(head) {
      if (applyHead(head) > 0) onEvents();
    },
  };

  return {
    create(params) {
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
    },
    get: (id) => store.getPayment(id),
    status: (row) => status(row),
    view(id) {
      const row = store.getPayment(id);
      if (!row) return undefined;
      const head = store.getCursor()?.head_number ?? 0;
      return {
        address: row.address,
        amount: formatAmount(BigInt(row.amount), decimals),
        seen_at: row.seen_at === null ? null : toUnixSeconds(row.seen_at),
        paid_at: row.paid_at === null ? null : toUnixSeconds(row.paid_at),
        tx_hash: row.tx_hash,
        status: status(row),
        paid_amount: formatAmount(BigInt(row.paid_amount), decimals),
        confirmations: confirmationsOf(row.block_number, head),
        required_confirmations: requiredConfirmations,
        expires_at: toUnixSeconds(row.expires_at),
      };
    },
    sink,
    store,
    events,
  };
}
