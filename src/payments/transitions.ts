/**
 * Applies the lifecycle to stored payments: reads a payment and its
 * transfers, asks `decide`, stores the result and queues the events it
 * raised. Every caller (the chain sink, the deadline sweep, a cancel) runs
 * it inside the transaction of its cause.
 */
import type { Logger } from "../internal/logger.ts";
import type { EventQueries, PaymentQueries, StoredPayment } from "../store/storage.ts";
import type { ChangeFeed } from "./changes.ts";
import { decide, type EventType } from "./lifecycle.ts";
import { queueEvents } from "./outbox.ts";

export type Transitions = {
  /**
   * Inside a transaction: locks payment `id` and re-decides it at the
   * networks' `heads` (read once per transaction, see PaymentStore.heads)
   * and `now`, stores it, queues its events; resolves how many events were
   * queued. With `expired`, a payment that expires is added to it instead
   * of logged on its own line (the deadline sweep logs them a batch at a
   * time: a backlog of 100,000 is not 100,000 synchronous writes to stderr).
   */
  apply(
    id: string,
    heads: ReadonlyMap<string, number>,
    now: number,
    expired?: string[],
  ): Promise<number>;
};

export function createTransitions({
  store,
  events,
  requiredConfirmations,
  defaultEvents,
  changes,
  logger,
}: {
  store: PaymentQueries;
  events: EventQueries;
  /** Told every payment re-decided, for the subscribers after the commit. */
  changes: ChangeFeed;
  /** The confirmations a transfer on `network` needs. */
  requiredConfirmations: (network: string) => number;
  /** The daemon's `postbacks.events`: what a payment without its own opt-in sends. */
  defaultEvents: readonly EventType[];
  logger: Logger;
}): Transitions {
  const log = logger.child({ module: "payments" });

  async function apply(
    id: string,
    heads: ReadonlyMap<string, number>,
    now: number,
    expired?: string[],
  ) {
    // NOTE: locked, so two transactions re-deciding one payment (two
    // networks' scans, a cancel, the sweep) take turns on PostgreSQL.
    const payment = await store.lockPayment(id);
    if (!payment) return 0;
    const transfers = (await store.transfersOf(payment.id)).map((t) => ({
      txHash: t.tx_hash,
      blockNumber: t.block_number,
      logIndex: t.log_index,
      value: BigInt(t.value),
      blockTimestamp: t.block_timestamp,
      network: t.network,
    }));
    const {
      next,
      events: raised,
      completing,
      lateCompleting,
    } = decide({
      payment,
      transfers,
      networks: { heads, requiredConfirmations },
      now,
    });
    await store.updateLifecycle(payment.id, next);
    changes.touch(payment.id);

    const fields = { payment_id: payment.id };
    if (payment.status !== next.status) {
      changes.transition({ from: payment.status, to: next.status });
      if (expired && next.status === "expired") expired.push(payment.id);
      else
        log.info(
          { ...fields, from: payment.status, to: next.status, paid_amount: next.paid_amount },
          `payment ${next.status}`,
        );
    }
    if (payment.seen_at !== null && next.seen_at === null) {
      log.warn(fields, "reorg orphaned every transfer of this payment: waiting again");
    }
    if (completing) {
      log.info(
        {
          ...fields,
          tx_hash: completing.txHash,
          block_number: completing.blockNumber,
          network: completing.network,
        },
        "payment paid",
      );
    }
    if (BigInt(next.wrong_network_amount) > BigInt(payment.wrong_network_amount)) {
      log.warn(
        { ...fields, wrong_network_amount: next.wrong_network_amount },
        "funds arrived on a network this payment does not accept: recorded, not counted",
      );
    }
    if (lateCompleting) {
      log.warn(
        { ...fields, tx_hash: lateCompleting.txHash, status: next.status },
        "late funds completed a payment that was no longer open: the shop decides",
      );
    }
    if (next.reorged_after_paid_at !== null && payment.reorged_after_paid_at === null) {
      log.error(
        { ...fields, tx_hash: payment.tx_hash, paid_amount: next.paid_amount },
        "reorg removed a transfer of a payment already marked paid: check it before shipping",
      );
    }
    const updated: StoredPayment = { ...payment, ...next };
    return await queueEvents({
      events,
      payment: updated,
      types: raised,
      defaults: defaultEvents,
      now,
    });
  }

  return { apply };
}
