/**
 * Cancelling a payment (merchant API). A cancelled payment never becomes
 * paid; transfers to its address are still recorded, as late funds.
 */
import type { Clock } from "../internal/clock.ts";
import type { PaymentRow } from "../store/payments.ts";
import { PaymentAlreadyPaidError, PaymentNotFoundError } from "./errors.ts";
import type { Payments } from "./index.ts";

/**
 * Cancels payment `id` unless it is paid; cancelling it again changes
 * nothing (the first `cancelled_at` stays). Returns the payment's row.
 * Throws PaymentNotFoundError or PaymentAlreadyPaidError.
 */
export function cancelPayment({
  payments,
  clock,
  id,
}: {
  payments: Payments;
  clock: Pick<Clock, "now">;
  id: string;
}): PaymentRow {
  // NOTE: one UPDATE guarded by paid_at IS NULL; better-sqlite3 is synchronous,
  // so the chain watcher's transaction cannot interleave with it.
  payments.store.cancelPayment({ id, now: clock.now() });
  const row = payments.get(id);
  if (!row) throw new PaymentNotFoundError(`no payment ${id}`);
  if (row.paid_at !== null) throw new PaymentAlreadyPaidError(`payment ${id} is paid`);
  return row;
}
