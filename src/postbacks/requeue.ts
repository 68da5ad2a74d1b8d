/**
 * Redelivery, shared by the `postbacks retry` command and the
 * `resend_postback` JSON-RPC method.
 */
import type { EventRow, EventStore } from "../store/events.ts";

/**
 * Puts an event (by event id) or all of a payment's events (by payment id)
 * back to pending, due at `now`, with a fresh retry schedule. Delivered and
 * failed events alike; they keep their id, so the shop sees the same
 * `webhook-id` again and can deduplicate. Returns the re-queued event ids
 * (empty if `id` names nothing).
 */
export function requeue({
  events,
  id,
  now,
}: {
  events: EventStore;
  id: string;
  now: number;
}): string[] {
  const event = events.get(id);
  const targets: EventRow[] = event ? [event] : events.byPayment(id);
  const ids = targets.map((row) => row.id);
  if (ids.length > 0) events.requeue(ids, now);
  return ids;
}
