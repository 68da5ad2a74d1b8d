/**
 * The postback outbox as the payment logic writes it (which transitions
 * queue which events, honouring the shop's opt-in) and as the sender and
 * the redelivery tools read it. Events are rows written in the same
 * transaction as the transition that raised them.
 */
import { randomBytes } from "node:crypto";
import type {
  AttemptRow,
  EventQueries,
  EventRow,
  EventState,
  PaymentRow,
  Storage,
  StoredPayment,
} from "../store/storage.ts";
import { DEFAULT_EVENT_TYPES, type EventType, isEventType } from "./lifecycle.ts";

/**
 * What a delivery attempt needs besides the event: the payment, the head at
 * send time of the network its confirmations are counted on, and whether
 * bodies carry the network fields (a config with `networks`).
 */
export type DeliveryContext = { payment: StoredPayment; head: number; showNetworks: boolean };

export type Outbox = {
  /** The first pending event of each payment, soonest due first (see EventStore.pendingHeads). */
  pendingHeads(limit: number): Promise<EventRow[]>;
  /** The payment an event is about, and the current head; undefined if the payment is gone. */
  context(event: EventRow): Promise<DeliveryContext | undefined>;
  /** Claims a pending event for one attempt until `leaseUntil` (see EventStore.claim). */
  claim(id: string, now: number, leaseUntil: number): Promise<EventRow | undefined>;
  /** Stores the body of the first attempt; later attempts send the same bytes. */
  setPayload(id: string, payload: string): Promise<void>;
  recordAttempt: EventQueries["recordAttempt"];
  /**
   * Puts an event (event id) or all of a payment's events (payment id) back
   * to pending, due at `now`, with a fresh retry schedule and the same
   * webhook-id. Returns the re-queued event ids (empty: `id` names nothing).
   */
  requeue(id: string, now: number): Promise<string[]>;
  get(id: string): Promise<EventRow | undefined>;
  /** All events, or those in `state`, in the order they were written. */
  list(state?: EventState): Promise<EventRow[]>;
  /** How many events are pending and since when the oldest waits (see EventStore.pendingSummary). */
  pendingSummary(): Promise<{ count: number; oldestAt: number | null }>;
  byPayment(paymentId: string): Promise<EventRow[]>;
  attemptsOf(eventId: string): Promise<AttemptRow[]>;
};

/** The event types a payment's postbacks carry: its own opt-in, else the daemon's. */
export function enabledEventsOf(
  payment: Pick<PaymentRow, "postback_events">,
  defaults: readonly EventType[],
): readonly EventType[] {
  if (payment.postback_events === null) return defaults;
  const parsed: unknown = JSON.parse(payment.postback_events);
  return Array.isArray(parsed) ? parsed.filter(isEventType) : defaults;
}

export function createOutbox({
  storage: { events, payments: store },
  showNetworks,
}: {
  storage: Pick<Storage, "events" | "payments">;
  /** Bodies carry the network fields (a config with `networks`). */
  showNetworks: boolean;
}): Outbox {
  return {
    pendingHeads: (limit) => events.pendingHeads(limit),
    async context(event) {
      const payment = await store.getPayment(event.payment_id);
      if (!payment) return undefined;
      const network = payment.block_network;
      const head = network === null ? 0 : ((await store.getCursor(network))?.head_number ?? 0);
      return { payment, head, showNetworks };
    },
    claim: (id, now, leaseUntil) => events.claim(id, now, leaseUntil),
    setPayload: (id, payload) => events.setPayload(id, payload),
    recordAttempt: events.recordAttempt,
    async requeue(id, now) {
      const event = await events.get(id);
      const ids = (event ? [event] : await events.byPayment(id)).map((row) => row.id);
      if (ids.length > 0) await events.requeue(ids, now);
      return ids;
    },
    get: (id) => events.get(id),
    list: (state) => events.list(state),
    pendingSummary: () => events.pendingSummary(),
    byPayment: (paymentId) => events.byPayment(paymentId),
    attemptsOf: (eventId) => events.attemptsOf(eventId),
  };
}

/**
 * Queues `types` for `payment` in the current transaction, those it opted in
 * to (default: payment.paid only) and only with a postback URL. A shop built
 * for the original 0xBTCpay treats ANY POST to its URL as "paid": without
 * its opt-in it must never get another event. Returns how many were queued.
 */
export async function queueEvents({
  events,
  payment,
  types,
  defaults = DEFAULT_EVENT_TYPES,
  now,
}: {
  events: EventQueries;
  payment: PaymentRow;
  types: readonly EventType[];
  defaults?: readonly EventType[];
  now: number;
}): Promise<number> {
  if (payment.postback_url === null || types.length === 0) return 0;
  const enabled = enabledEventsOf(payment, defaults);
  let queued = 0;
  for (const type of types) {
    if (!enabled.includes(type)) continue;
    await events.insert({
      id: `evt_${randomBytes(12).toString("hex")}`,
      payment_id: payment.id,
      type,
      url: payment.postback_url,
      created_at: now,
      next_attempt_at: now,
    });
    queued++;
  }
  return queued;
}
