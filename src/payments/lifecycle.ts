/**
 * The payment lifecycle, defined once: a pure function from what a payment
 * is (its amount, deadline, cancel, stored state) and what the chain says
 * (its transfers, the head) to its next stored state and the events that
 * the transition raises. Whoever applies it (a scan batch, a rewind, a new
 * head, the deadline sweep, a cancel) stores the result in the transaction
 * of the cause; every reader reads the stored fields.
 *
 * ```
 *  waiting ──funds──▶ seen ──confirmed, in time──▶ paid ──reorg took the funds──▶ paid + reorged_after_paid
 *     ▲ └──────────────┼──▶ expired (deadline, amount not received in time) ──late funds confirmed──▶ expired + paid_late
 *     └──reorg─────────┘    cancelled (shop)                                  ──late funds confirmed──▶ cancelled + paid_late
 * ```
 */
import type { LifecycleFields, PaymentRow, PaymentStatus } from "../store/payments.ts";
import { evaluatePayment, type TransferForEvaluation } from "./evaluate.ts";

export type { PaymentStatus };

/** Every status a payment can have. */
export const PAYMENT_STATUSES: readonly PaymentStatus[] = [
  "waiting",
  "seen",
  "paid",
  "expired",
  "cancelled",
];

/** Every postback event type, in the order one transition raises them. */
export const EVENT_TYPES = [
  "payment.seen",
  "payment.paid",
  "payment.expired",
  "payment.cancelled",
  "payment.paid_late",
  "payment.reorged_after_paid",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** What a shop that did not opt in receives: the original 0xBTCpay's one postback. */
export const DEFAULT_EVENT_TYPES: readonly EventType[] = ["payment.paid"];

export function isEventType(value: unknown): value is EventType {
  return (EVENT_TYPES as readonly unknown[]).includes(value);
}

/**
 * The moment after which funds are late (UNIX ms): expires_at, or the
 * cancel if the shop cancelled earlier.
 */
export function deadlineOf(row: Pick<PaymentRow, "expires_at" | "cancelled_at">): number {
  return row.cancelled_at === null ? row.expires_at : Math.min(row.expires_at, row.cancelled_at);
}

export type Decision = {
  next: LifecycleFields;
  /** The events this transition raises, in {@link EVENT_TYPES} order (before opt-in). */
  events: EventType[];
  /** The transfer that completed the payment in this step, if it became paid. */
  completing: TransferForEvaluation | undefined;
  /** The late transfer that completed it, if it became paid late in this step. */
  lateCompleting: TransferForEvaluation | undefined;
};

/**
 * The next lifecycle state of `payment`.
 *
 * - **paid**: the running sum of its in-time transfers (block time at or
 *   before the deadline) reaches the amount and the transfer that did it has
 *   `requiredConfirmations`; never for a cancelled payment. Paid is final: a
 *   reorg that takes the funds away raises the `reorged_after_paid` flag
 *   instead (cleared if the funds come back).
 * - **cancelled**: the shop cancelled it (and it was not paid).
 * - **expired**: `now` is at or past `expires_at` and the in-time funds do
 *   not reach the amount (a fully received payment still confirming goes
 *   on to paid).
 * - **seen** / **waiting**: some transfer is recorded, or none.
 * - flag **paid_late**: not paid, but in-time plus late funds reach the
 *   amount and the transfer that did it is confirmed.
 *
 * Amounts and flags follow the transfers exactly: whatever a reorg removed
 * is recomputed away. `transfers` must be in chain order.
 */
export function decide({
  payment,
  transfers,
  head,
  requiredConfirmations,
  now,
}: {
  payment: Pick<
    PaymentRow,
    | "amount"
    | "expires_at"
    | "cancelled_at"
    | "status"
    | "seen_at"
    | "paid_at"
    | "tx_hash"
    | "block_number"
    | "paid_late_at"
    | "reorged_after_paid_at"
  >;
  transfers: readonly TransferForEvaluation[];
  head: number;
  requiredConfirmations: number;
  /** UNIX ms. */
  now: number;
}): Decision {
  const evaluation = evaluatePayment({
    amount: BigInt(payment.amount),
    transfers,
    head,
    requiredConfirmations,
    expiresAt: deadlineOf(payment),
  });
  const amounts = {
    paid_amount: evaluation.paidAmount.toString(),
    late_amount: evaluation.lateAmount.toString(),
  };
  const before = payment.status;
  let next: LifecycleFields;
  let completing: TransferForEvaluation | undefined;
  let lateCompleting: TransferForEvaluation | undefined;

  if (before === "paid") {
    const funded =
      evaluation.completing !== undefined && transfers.some((t) => t.txHash === payment.tx_hash);
    next = {
      status: "paid",
      seen_at: payment.seen_at,
      paid_at: payment.paid_at,
      tx_hash: payment.tx_hash,
      block_number: evaluation.referenceBlock ?? null,
      ...amounts,
      paid_late_at: null,
      reorged_after_paid_at: funded ? null : (payment.reorged_after_paid_at ?? now),
    };
  } else {
    const cancelled = payment.cancelled_at !== null;
    if (!cancelled && evaluation.paid) completing = evaluation.completing;
    const paidLate = completing === undefined && evaluation.paidLate;
    if (paidLate && payment.paid_late_at === null) lateCompleting = evaluation.lateCompleting;
    const status: PaymentStatus = completing
      ? "paid"
      : cancelled
        ? "cancelled"
        : now >= payment.expires_at && evaluation.completing === undefined
          ? "expired"
          : transfers.length > 0
            ? "seen"
            : "waiting";
    next = {
      status,
      // Only orphaned transfers made it seen: back to unseen.
      seen_at: transfers.length === 0 ? null : (payment.seen_at ?? now),
      paid_at: completing ? now : null,
      tx_hash: completing?.txHash ?? null,
      block_number: evaluation.referenceBlock ?? null,
      ...amounts,
      paid_late_at: paidLate ? (payment.paid_late_at ?? now) : null,
      reorged_after_paid_at: null,
    };
  }
  return { next, events: eventsOf(payment, next), completing, lateCompleting };
}

/** The events of the transition `before` → `after`, in {@link EVENT_TYPES} order. */
function eventsOf(
  before: Pick<PaymentRow, "status" | "paid_late_at" | "reorged_after_paid_at">,
  after: LifecycleFields,
): EventType[] {
  const events: EventType[] = [];
  const progressed = (status: PaymentStatus) => status === "seen" || status === "paid";
  // Seen when funds are first on the way, also if they complete it at once.
  if (progressed(after.status) && !progressed(before.status)) events.push("payment.seen");
  if (after.status === "paid" && before.status !== "paid") events.push("payment.paid");
  if (after.status === "expired" && before.status !== "expired") events.push("payment.expired");
  if (after.status === "cancelled" && before.status !== "cancelled") {
    events.push("payment.cancelled");
  }
  if (after.paid_late_at !== null && before.paid_late_at === null) events.push("payment.paid_late");
  if (after.reorged_after_paid_at !== null && before.reorged_after_paid_at === null) {
    events.push("payment.reorged_after_paid");
  }
  return events;
}
