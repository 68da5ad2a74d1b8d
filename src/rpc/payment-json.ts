/**
 * The full payment as the private port shows it (get_payment, list_payments,
 * cancel_payment): status.json's fields plus what only the shop may see.
 */
import { toUnixSeconds } from "../internal/clock.ts";
import type { PaymentDetail } from "../payments/index.ts";
import { RawJson } from "./raw-json.ts";

const seconds = (ms: number | null) => (ms === null ? null : toUnixSeconds(ms));

/** Formats a payment for the private port. */
export type PaymentJson = (detail: PaymentDetail) => Record<string, unknown>;

/**
 * `id`, then status.json's fields in their order, then the private ones.
 * `data` is the shop's JSON as sent (not a string, unlike the postback).
 * With `checkoutUrlOf`, `checkout_url` is the hosted page the shop sends
 * the buyer to.
 */
export function createPaymentJson(
  checkoutUrlOf: ((id: string) => string) | undefined,
): PaymentJson {
  return ({ row, view, events }) => ({
    id: row.id,
    ...view,
    created_at: toUnixSeconds(row.created_at),
    cancelled_at: seconds(row.cancelled_at),
    order_id: row.order_id,
    description: row.description,
    return_url: row.return_url,
    cancel_url: row.cancel_url,
    ...(checkoutUrlOf ? { checkout_url: checkoutUrlOf(row.id) } : {}),
    postback_url: row.postback_url,
    postback_events: row.postback_events === null ? null : JSON.parse(row.postback_events),
    data: row.data === null ? null : new RawJson(row.data),
    postbacks: events.map((event) => ({
      event_id: event.id,
      event: event.type,
      state: event.state,
      attempts: event.attempts,
      last_status: event.last_status,
      delivered_at: seconds(event.delivered_at),
    })),
  });
}
