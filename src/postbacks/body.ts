/**
 * The postback body, for any event type: the original 0xBTCpay's fields
 * first, then additive ones.
 */
import { toUnixSeconds } from "../internal/clock.ts";
import { formatAmount } from "../payments/amount.ts";
import { confirmationsOf } from "../payments/evaluate.ts";
import type { EventRow, PaymentNetworkColumns, PaymentRow } from "../store/storage.ts";

/**
 * `id`, `data` (the shop's data as a JSON string, `"null"` if none) and
 * `tx_hash` as the original sent them; then `event` (the event type, e.g.
 * "payment.paid"), the payment's stored `status`, amounts as decimal strings,
 * `address`, `block_number`, `confirmations` (at `head`) and `paid_at`
 * (UNIX seconds or null), `late_amount`, and the flags `paid_late` and
 * `reorged_after_paid`. With `showNetworks` (a config with `networks`):
 * `network` (of `tx_hash`, null until paid) after `tx_hash`, and
 * `wrong_network` and `wrong_network_amount` at the end.
 */
export function postbackBody({
  event,
  payment,
  decimals,
  head,
  showNetworks = false,
}: {
  event: Pick<EventRow, "type">;
  payment: PaymentRow & Partial<PaymentNetworkColumns>;
  decimals: number;
  /** The head of the network the payment's confirmations are counted on. */
  head: number;
  showNetworks?: boolean;
}): string {
  const wrong = BigInt(payment.wrong_network_amount ?? "0");
  return JSON.stringify({
    id: payment.id,
    data: payment.data ?? "null",
    tx_hash: payment.tx_hash,
    ...(showNetworks
      ? { network: payment.tx_hash === null ? null : (payment.network ?? null) }
      : {}),
    event: event.type,
    status: payment.status,
    amount: formatAmount(BigInt(payment.amount), decimals),
    paid_amount: formatAmount(BigInt(payment.paid_amount), decimals),
    address: payment.address,
    block_number: payment.block_number,
    confirmations: confirmationsOf(payment.block_number, head),
    paid_at: payment.paid_at === null ? null : toUnixSeconds(payment.paid_at),
    late_amount: formatAmount(BigInt(payment.late_amount), decimals),
    paid_late: payment.paid_late_at !== null,
    reorged_after_paid: payment.reorged_after_paid_at !== null,
    ...(showNetworks
      ? { wrong_network: wrong > 0n, wrong_network_amount: formatAmount(wrong, decimals) }
      : {}),
  });
}
