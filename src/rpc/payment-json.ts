/**
 * The full payment as the private port shows it (get_payment, list_payments,
 * cancel_payment): status.json's fields plus what only the shop may see.
 */
import { toUnixSeconds } from "../internal/clock.ts";
import type { PaymentDetail } from "../payments/index.ts";
import { RawJson } from "./raw-json.ts";

const seconds = (ms: number | null) => (ms === null ? null : toUnixSeconds(ms));

/**
 * `id`, then status.json's fields in their order, then the private ones.
 * `data` is the shop's JSON as sent (not a string, unlike the postback).
 */
export function paymentJson({ row, view, events }: PaymentDetail): Record<string, unknown> {
  return {
    id: row.id,
    ...view,
    created_at: toUnixSeconds(row.created_at),
    cancelled_at: seconds(row.cancelled_at),
    order_id: row.order_id,
    description: row.description,
    return_url: row.return_url,
    cancel_url: row.cancel_url,
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
  };
}
