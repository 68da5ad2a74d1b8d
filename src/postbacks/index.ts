/**
 * Delivers the outbox: POSTs each pending event to the shop's postback URL
 * and records every attempt in SQLite.
 */
import type { Clock } from "../internal/clock.ts";
import { toUnixSeconds } from "../internal/clock.ts";
import { errorMessage } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import { formatAmount } from "../payments/amount.ts";
import type { Payments } from "../payments/index.ts";
import type { EventRow } from "../store/events.ts";
import type { PaymentRow } from "../store/payments.ts";

/** Bytes of a shop's response body we read (and then drop) at most. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export type PostbackSender = {
  /** Delivers due events until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** New events were queued: deliver now rather than at the next poll. */
  wake(): void;
  /** Delivers the events due now; resolves with how many were attempted. */
  deliverDue(): Promise<number>;
};

/**
 * The postback body: the original's fields `id`, `data` (the shop's data as
 * a JSON string) and `tx_hash` first, then additive ones.
 */
export function postbackBody({
  event,
  payment,
  status,
  decimals,
}: {
  event: Pick<EventRow, "type">;
  payment: PaymentRow;
  status: string;
  decimals: number;
}): string {
  return JSON.stringify({
    id: payment.id,
    data: payment.data ?? "null",
    tx_hash: payment.tx_hash,
    event: event.type,
    status,
    amount: formatAmount(BigInt(payment.amount), decimals),
    paid_amount: formatAmount(BigInt(payment.paid_amount), decimals),
    address: payment.address,
    block_number: payment.block_number,
    paid_at: payment.paid_at === null ? null : toUnixSeconds(payment.paid_at),
  });
}

async function drain(response: Response): Promise<void> {
  if (!response.body) return;
  const reader = response.body.getReader();
  let read = 0;
  try {
    while (read < MAX_RESPONSE_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

export function createPostbackSender({
  payments,
  clock,
  logger,
  decimals,
  timeoutMs,
  fetch: fetchFn = fetch,
  concurrency = 8,
  idlePollMs = 1000,
}: {
  payments: Payments;
  clock: Clock;
  logger: Logger;
  decimals: number;
  timeoutMs: number;
  fetch?: typeof fetch;
  concurrency?: number;
  idlePollMs?: number;
}): PostbackSender {
  const log = logger.child({ module: "postbacks" });
  const events = payments.events;
  let wakeUp: (() => void) | undefined;
  let woken = false;

  async function deliver(event: EventRow): Promise<void> {
    const payment = payments.get(event.payment_id);
    if (!payment) return;
    const body = postbackBody({ event, payment, status: payments.status(payment), decimals });
    const attemptedAt = clock.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const response = await fetchFn(event.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "0xbtcpay" },
        body,
        // A redirect could point anywhere, the shop's internal network included.
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      await drain(response).catch(() => {});
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (cause) {
      error = errorMessage(cause);
    }
    const delivered = error === null;
    const finishedAt = clock.now();
    // NOTE: one attempt per event for now; the retry schedule builds on these rows.
    events.recordAttempt(
      {
        event_id: event.id,
        attempted_at: attemptedAt,
        duration_ms: finishedAt - attemptedAt,
        status,
        error,
      },
      {
        state: delivered ? "delivered" : "failed",
        next_attempt_at: event.next_attempt_at,
        delivered_at: delivered ? finishedAt : null,
      },
    );
    const fields = {
      event_id: event.id,
      payment_id: event.payment_id,
      status,
      duration_ms: finishedAt - attemptedAt,
    };
    if (delivered) log.info(fields, "postback delivered");
    else log.warn({ ...fields, err: error }, "postback failed");
  }

  async function deliverDue(): Promise<number> {
    const due = events.due(clock.now(), concurrency);
    await Promise.all(due.map((event) => deliver(event)));
    return due.length;
  }

  return {
    deliverDue,
    wake() {
      woken = true;
      wakeUp?.();
    },
    async run(signal) {
      while (!signal.aborted) {
        woken = false;
        let attempted = 0;
        try {
          attempted = await deliverDue();
        } catch (error) {
          log.error({ err: errorMessage(error) }, "postback loop failed");
        }
        if (attempted > 0 || woken || signal.aborted) continue;
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          wakeUp = stop;
          clock.sleep(idlePollMs, signal).then(stop);
        });
        wakeUp = undefined;
      }
    },
  };
}
