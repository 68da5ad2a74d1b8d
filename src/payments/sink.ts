/**
 * The chain watcher's consumer: turns scan batches, rewinds and new heads
 * into recorded transfers and lifecycle transitions, each in one transaction
 * with the scan cursor.
 */
import type {
  BlockHeader,
  ChainSink,
  ScanBatch,
  ScanCursor,
  TokenTransfer,
} from "../chain/types.ts";
import type { Clock } from "../internal/clock.ts";
import { ChainMismatchError } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { Db } from "../store/index.ts";
import type { PaymentStore } from "../store/payments.ts";
import type { ChangeFeed } from "./changes.ts";
import type { Transitions } from "./transitions.ts";

export function createPaymentSink({
  db,
  store,
  transitions,
  changes,
  clock,
  logger,
  chainId,
  token,
  monitorForSeconds,
  keepBlocks,
  onEvents,
}: {
  db: Db;
  store: PaymentStore;
  transitions: Transitions;
  changes: ChangeFeed;
  clock: Pick<Clock, "now">;
  logger: Logger;
  chainId: number;
  token: string;
  /** How long after expiry late funds to an address are still recorded. */
  monitorForSeconds: number;
  /** Recent block headers kept for reorg checks. */
  keepBlocks: number;
  /** Called after a commit that queued postback events. */
  onEvents: () => void;
}): ChainSink {
  const log = logger.child({ module: "payments" });

  /** Re-decides the touched payments and those a new head can change; returns events queued. */
  function reevaluate(touched: Iterable<string>, head: number, now: number): number {
    const ids = new Set(touched);
    let queued = 0;
    for (const id of ids) queued += transitions.apply(id, head, now);
    for (const id of store.confirmingPaymentIds()) {
      if (!ids.has(id)) queued += transitions.apply(id, head, now);
    }
    return queued;
  }

  function rememberBlocks(blocks: readonly BlockHeader[], newest: number) {
    for (const block of blocks) {
      store.rememberBlock({
        number: block.number,
        hash: block.hash,
        parent_hash: block.parentHash,
        timestamp: block.timestamp,
      });
    }
    store.pruneBlocksBelow(newest - keepBlocks);
  }

  /** Marks the head as moved in the change feed if `head` is not the one stored. */
  function noteHead(head: number) {
    if (store.getCursor()?.head_number !== head) changes.headMoved();
  }

  const applyBatch = db.transaction((batch: ScanBatch): number => {
    // NOTE: compare-and-set on the cursor. The watcher read it before it
    // fetched the batch; if it moved meanwhile (`0xbtcpay rescan` moved it
    // back), the batch no longer follows it: drop it, the watcher reads the
    // cursor again and scans from there.
    const stored = store.getCursor();
    if (stored && stored.block_number !== batch.fromBlock - 1) {
      log.info(
        { from_block: batch.fromBlock, cursor: stored.block_number },
        "the scan cursor moved under the batch (rescan): scanning again from the cursor",
      );
      return 0;
    }
    const now = clock.now();
    noteHead(batch.head);
    const touched = new Set<string>();
    for (const transfer of batch.transfers) {
      const payment = store.paymentWindowByAddress(transfer.to);
      if (payment === undefined) continue;
      const time = transfer.blockTimestamp;
      if (time !== undefined && time * 1000 > payment.expires_at + monitorForSeconds * 1000) {
        log.debug(
          { payment_id: payment.id, tx_hash: transfer.txHash },
          "transfer after the monitoring window: ignored",
        );
        continue;
      }
      const inserted = store.insertTransfer({
        tx_hash: transfer.txHash,
        log_index: transfer.logIndex,
        block_number: transfer.blockNumber,
        block_hash: transfer.blockHash,
        from_address: transfer.from,
        to_address: transfer.to,
        value: transfer.value.toString(),
        payment_id: payment.id,
        recorded_at: now,
        block_timestamp: time ?? null,
      });
      if (inserted) touched.add(payment.id);
    }
    const last = batch.blocks.at(-1);
    if (!last || last.number !== batch.toBlock)
      throw new Error("batch without its last block header");
    rememberBlocks(batch.blocks, batch.toBlock);
    store.moveCursor({
      block_number: batch.toBlock,
      block_hash: last.hash,
      head_number: batch.head,
      updated_at: now,
    });
    return reevaluate(touched, batch.head, now);
  });

  const rewind = db.transaction(
    (ancestor: { number: number; hash: string | null }, head: number): number => {
      const now = clock.now();
      changes.headMoved();
      const affected = store.forgetAbove(ancestor.number);
      const stored = store.getCursor();
      // A rescan may have moved the cursor below the ancestor meanwhile: keep it there.
      const keep = stored !== undefined && stored.block_number < ancestor.number;
      store.moveCursor({
        block_number: keep ? stored.block_number : ancestor.number,
        block_hash: keep ? stored.block_hash : ancestor.hash,
        head_number: head,
        updated_at: now,
      });
      return reevaluate(affected, head, now);
    },
  );

  const applyHead = db.transaction((head: number): number => {
    const now = clock.now();
    noteHead(head);
    store.setHead(head, now);
    return reevaluate([], head, now);
  });

  const applyBatchCommitted = changes.around(applyBatch);
  const rewindCommitted = changes.around(rewind);
  const applyHeadCommitted = changes.around(applyHead);

  return {
    cursor(): ScanCursor | undefined {
      const row = store.getCursor();
      if (!row) return undefined;
      if (row.chain_id !== chainId || row.token !== token) {
        throw new ChainMismatchError(
          `the database was written for chain ${row.chain_id} token ${row.token}, not chain ${chainId} token ${token}: use a new database.path`,
        );
      }
      return { blockNumber: row.block_number, blockHash: row.block_hash };
    },
    initCursor: db.transaction((block: BlockHeader | { number: -1; hash: null }, head: number) => {
      if ("parentHash" in block) rememberBlocks([block], block.number);
      store.setCursor({
        chain_id: chainId,
        token,
        block_number: block.number,
        block_hash: block.hash,
        head_number: head,
        updated_at: clock.now(),
      });
    }),
    filter(transfers: readonly TokenTransfer[]) {
      return transfers.filter((t) => store.paymentIdByAddress(t.to) !== undefined);
    },
    blockHash: (number) => store.blockHash(number),
    applyBatch(batch) {
      if (applyBatchCommitted(batch) > 0) onEvents();
    },
    rewind(ancestor, head) {
      if (rewindCommitted(ancestor, head) > 0) onEvents();
    },
    applyHead(head) {
      if (applyHeadCommitted(head) > 0) onEvents();
    },
  };
}
