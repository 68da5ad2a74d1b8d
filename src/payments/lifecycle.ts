/**
 * The payment lifecycle, defined once: a pure function from what a payment
 * is (its amount, deadline, cancel, stored state) and what the chain says
 * (its transfers, the head) to its next stored state and the events that
 * the transition raises. Whoever applies it (a scan batch, a rewind, a new
 * head, the deadline sweep, a cancel) stores the result in the transaction
 * of the cause; every reader reads the stored fields.
 *
 * Funds may arrive on any network the daemon watches, to the same address;
 * each network confirms its own transfers.
 *
 * ```
 *  waiting ──funds──▶ seen ──confirmed, in time──▶ paid ──reorg took the funds──▶ paid + reorged_after_paid
 *     ▲ └──────────────┼──▶ expired (deadline, amount not received in time) ──late funds confirmed──▶ expired + paid_late
 *     └──reorg─────────┘    cancelled (shop)                                  ──late funds confirmed──▶ cancelled + paid_late
 * ```
 */
import type {
  LifecycleFields,
  PaymentRow,
  PaymentStatus,
  StoredPayment,
} from "../store/storage.ts";
import { evaluateTransfers, type TransferForEvaluation } from "./evaluate.ts";

export type { PaymentStatus };

/** Every status a payment can have. */
export const PAYMENT_STATUSES: readonly PaymentStatus[] = [
  "waiting",
  "seen",
  "paid",
  "expired",
  "cancelled",
];

/**
 * The postback event types every daemon raises (with the single `chain`
 * section, all of them), in the order one transition raises them.
 */
export const EVENT_TYPES = [
  "payment.seen",
  "payment.paid",
  "payment.expired",
  "payment.cancelled",
  "payment.paid_late",
  "payment.reorged_after_paid",
] as const;

/**
 * The event types only a daemon with `networks` raises: funds arrived on a
 * network the payment does not accept. Raised after {@link EVENT_TYPES}'.
 */
export const NETWORK_EVENT_TYPES = ["payment.wrong_network"] as const;

/** Every postback event type, in the order one transition raises them. */
export const ALL_EVENT_TYPES = [...EVENT_TYPES, ...NETWORK_EVENT_TYPES] as const;

export type EventType = (typeof ALL_EVENT_TYPES)[number];

/** The event types a daemon raises: with `networks`, {@link NETWORK_EVENT_TYPES} too. */
export function eventTypesOf({ networks }: { networks: boolean }): readonly EventType[] {
  return networks ? ALL_EVENT_TYPES : EVENT_TYPES;
}

/** What a shop that did not opt in receives: the original 0xBTCpay's one postback. */
export const DEFAULT_EVENT_TYPES: readonly EventType[] = ["payment.paid"];

export function isEventType(value: unknown): value is EventType {
  return (ALL_EVENT_TYPES as readonly unknown[]).includes(value);
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
  /** The events this transition raises, in {@link ALL_EVENT_TYPES} order (before opt-in). */
  events: EventType[];
  /** The transfer that completed the payment in this step, if it became paid. */
  completing: TransferForEvaluation | undefined;
  /** The late transfer that completed it, if it became paid late in this step. */
  lateCompleting: TransferForEvaluation | undefined;
};

/** The networks a payment accepts: its own list (start_payment `networks`), else any. */
export function acceptedNetworksOf(
  payment: Pick<StoredPayment, "networks">,
): readonly string[] | undefined {
  if (payment.networks === null) return undefined;
  const parsed: unknown = JSON.parse(payment.networks);
  return Array.isArray(parsed) ? parsed.filter((name) => typeof name === "string") : undefined;
}

/** What the lifecycle knows of the networks besides the transfers. */
export type NetworkState = {
  /** The head of each network. */
  heads: ReadonlyMap<string, number>;
  /** Confirmations a transfer on `network` needs (that network's `confirmations`). */
  requiredConfirmations(network: string): number;
};

/**
 * The next lifecycle state of `payment`.
 *
 * - Funds count only on the networks the payment accepts (all, unless
 *   start_payment restricted them); funds elsewhere are recorded, added up
 *   in `wrong_network_amount`, and never counted.
 * - **paid**: the in-time funds (block time of their own network at or
 *   before the deadline) that are confirmed (each transfer by its own
 *   network's head and `confirmations`) add up to the amount; `tx_hash` and
 *   `network` are the transfer that brought that sum there (in arrival
 *   order: chain order on each network, block time between networks).
 *   Never for a cancelled payment. Paid is final: a reorg that takes the
 *   funds away raises the `reorged_after_paid` flag instead (cleared if the
 *   funds come back).
 * - **cancelled**: the shop cancelled it (and it was not paid).
 * - **expired**: `now` is at or past `expires_at` and the in-time funds do
 *   not reach the amount (a fully received payment still confirming goes
 *   on to paid).
 * - **seen** / **waiting**: some counted transfer is recorded, or none.
 * - flag **paid_late**: not paid, but in-time plus late funds reach the
 *   amount, confirmed.
 *
 * Amounts and flags follow the transfers exactly: whatever a reorg removed
 * is recomputed away. Each network's transfers must be in chain order.
 */
export function decide({
  payment,
  transfers,
  networks,
  now,
}: {
  payment: Pick<
    StoredPayment,
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
    | "networks"
    | "network"
    | "wrong_network_amount"
  >;
  /** Every recorded transfer to the payment's address, each with its `network`. */
  transfers: readonly TransferForEvaluation[];
  networks: NetworkState;
  /** UNIX ms. */
  now: number;
}): Decision {
  const accepted = acceptedNetworksOf(payment);
  const evaluation = evaluateTransfers({
    amount: BigInt(payment.amount),
    transfers,
    expiresAt: deadlineOf(payment),
    rules: {
      heads: networks.heads,
      requiredConfirmations: networks.requiredConfirmations,
      accepts: (network) => accepted === undefined || accepted.includes(network),
    },
  });
  const derived = {
    block_number: evaluation.reference?.blockNumber ?? null,
    block_network: evaluation.reference?.network ?? null,
    paid_amount: evaluation.paidAmount.toString(),
    late_amount: evaluation.lateAmount.toString(),
    wrong_network_amount: evaluation.wrongNetworkAmount.toString(),
  };
  const before = payment.status;
  let next: LifecycleFields;
  let completing: TransferForEvaluation | undefined;
  let lateCompleting: TransferForEvaluation | undefined;

  if (before === "paid") {
    const funded =
      evaluation.completing !== undefined &&
      transfers.some(
        (t) =>
          t.txHash === payment.tx_hash &&
          (payment.network === null || t.network === payment.network),
      );
    next = {
      status: "paid",
      seen_at: payment.seen_at,
      paid_at: payment.paid_at,
      tx_hash: payment.tx_hash,
      network: payment.network,
      ...derived,
      paid_late_at: null,
      reorged_after_paid_at: funded ? null : (payment.reorged_after_paid_at ?? now),
    };
  } else {
    const cancelled = payment.cancelled_at !== null;
    if (!cancelled && evaluation.paid) completing = evaluation.paidBy;
    const paidLate = completing === undefined && evaluation.paidLate;
    if (paidLate && payment.paid_late_at === null) lateCompleting = evaluation.latePaidBy;
    const status: PaymentStatus = completing
      ? "paid"
      : cancelled
        ? "cancelled"
        : now >= payment.expires_at && evaluation.completing === undefined
          ? "expired"
          : evaluation.counted > 0
            ? "seen"
            : "waiting";
    next = {
      status,
      // Only orphaned transfers made it seen: back to unseen.
      seen_at: evaluation.counted === 0 ? null : (payment.seen_at ?? now),
      paid_at: completing ? now : null,
      tx_hash: completing?.txHash ?? null,
      network: completing?.network ?? null,
      ...derived,
      paid_late_at: paidLate ? (payment.paid_late_at ?? now) : null,
      reorged_after_paid_at: null,
    };
  }
  return { next, events: eventsOf(payment, next), completing, lateCompleting };
}

/** The events of the transition `before` → `after`, in {@link ALL_EVENT_TYPES} order. */
function eventsOf(
  before: Pick<
    StoredPayment,
    "status" | "paid_late_at" | "reorged_after_paid_at" | "wrong_network_amount"
  >,
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
  // More funds on a network the payment does not accept.
  if (BigInt(after.wrong_network_amount) > BigInt(before.wrong_network_amount)) {
    events.push("payment.wrong_network");
  }
  return events;
}
