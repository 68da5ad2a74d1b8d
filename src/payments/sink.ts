/**
 * A chain watcher's consumer, one per network: turns that network's scan
 * batches, rewinds and new heads into recorded transfers and lifecycle
 * transitions, each in one transaction with that network's scan cursor.
 * Another network's cursor, blocks and transfers are never touched, but
 * the payments re-decided see every network's transfers and heads.
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
import type { PaymentQueries } from "../store/storage.ts";
import { LEGACY_NETWORK } from "../store/storage.ts";
import type { ChangeFeed } from "./changes.ts";
import type { Transitions } from "./transitions.ts";

export function createPaymentSink({
  store,
  transitions,
  changes,
  clock,
  logger,
  network,
  monitorForSeconds,
  keepBlocks,
  onEvents,
}: {
  store: PaymentQueries;
  transitions: Transitions;
  changes: ChangeFeed;
  clock: Pick<Clock, "now">;
  logger: Logger;
  /** The network this sink records: its name (cursor, blocks, transfers), chain id and token. */
  network: { name: string; chainId: number; token: string };
  /** How long after expiry late funds to an address are still recorded. */
  monitorForSeconds: number;
  /** Recent block headers kept for reorg checks. */
  keepBlocks: number;
  /** Called after a commit that queued postback events. */
  onEvents: () => void;
}): ChainSink {
  const log = logger.child({ module: "payments", network: network.name });
  const { name, chainId, token } = network;

  /**
   * Re-decides the touched payments and those a new head can change, at
   * this network's `head` and the other networks' stored heads; returns
   * events queued.
   */
  async function reevaluate(touched: Iterable<string>, head: number, now: number) {
    const heads = await store.heads();
    heads.set(name, head);
    const ids = new Set(touched);
    for (const id of await store.confirmingPaymentIds()) ids.add(id);
    let queued = 0;
    // NOTE: in id order, so two transactions locking the same payments
    // (two networks' scans on PostgreSQL) lock them in the same order.
    for (const id of [...ids].sort()) queued += await transitions.apply(id, heads, now);
    return queued;
  }

  async function rememberBlocks(blocks: readonly BlockHeader[], newest: number) {
    for (const block of blocks) {
      await store.rememberBlock(name, {
        number: block.number,
        hash: block.hash,
        parent_hash: block.parentHash,
        timestamp: block.timestamp,
      });
    }
    await store.pruneBlocksBelow(name, newest - keepBlocks);
  }

  /** Marks the head as moved in the change feed if `head` is not the one stored. */
  async function noteHead(head: number) {
    if ((await store.getCursor(name))?.head_number !== head) changes.headMoved();
  }

  const applyBatch = changes.transaction(async (batch: ScanBatch): Promise<number> => {
    // NOTE: compare-and-set on the cursor (locked until the commit). The
    // watcher read it before it fetched the batch; if it moved meanwhile
    // (`0xbtcpay rescan` moved it back, or another replica's scan moved it
    // on), the batch no longer follows it: drop it, the watcher reads the
    // cursor again and scans from there.
    const stored = await store.lockCursor(name);
    if (stored && stored.block_number !== batch.fromBlock - 1) {
      log.info(
        { from_block: batch.fromBlock, cursor: stored.block_number },
        "the scan cursor moved under the batch (rescan): scanning again from the cursor",
      );
      return 0;
    }
    const now = clock.now();
    await noteHead(batch.head);
    const touched = new Set<string>();
    for (const transfer of batch.transfers) {
      const payment = await store.paymentWindowByAddress(transfer.to);
      if (payment === undefined) continue;
      const time = transfer.blockTimestamp;
      if (time !== undefined && time * 1000 > payment.expires_at + monitorForSeconds * 1000) {
        log.debug(
          { payment_id: payment.id, tx_hash: transfer.txHash },
          "transfer after the monitoring window: ignored",
        );
        continue;
      }
      const inserted = await store.insertTransfer({
        network: name,
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
    await rememberBlocks(batch.blocks, batch.toBlock);
    await store.moveCursor(name, {
      block_number: batch.toBlock,
      block_hash: last.hash,
      head_number: batch.head,
      updated_at: now,
    });
    return reevaluate(touched, batch.head, now);
  });

  const rewind = changes.transaction(
    async (ancestor: { number: number; hash: string | null }, head: number): Promise<number> => {
      const now = clock.now();
      changes.headMoved();
      const stored = await store.lockCursor(name);
      const affected = await store.forgetAbove(name, ancestor.number);
      // A rescan may have moved the cursor below the ancestor meanwhile: keep it there.
      const keep = stored !== undefined && stored.block_number < ancestor.number;
      await store.moveCursor(name, {
        block_number: keep ? stored.block_number : ancestor.number,
        block_hash: keep ? stored.block_hash : ancestor.hash,
        head_number: head,
        updated_at: now,
      });
      return reevaluate(affected, head, now);
    },
  );

  const applyHead = changes.transaction(async (head: number): Promise<number> => {
    const now = clock.now();
    await noteHead(head);
    await store.setHead(name, head, now);
    return reevaluate([], head, now);
  });

  return {
    async cursor(): Promise<ScanCursor | undefined> {
      const row = await store.getCursor(name);
      if (!row) return undefined;
      if (row.chain_id !== chainId || row.token !== token) {
        throw new ChainMismatchError(
          `the database was written for chain ${row.chain_id} token ${row.token}, not chain ${chainId} token ${token}${name === LEGACY_NETWORK ? "" : ` (network ${name})`}: use a new database.path`,
        );
      }
      return { blockNumber: row.block_number, blockHash: row.block_hash };
    },
    initCursor: changes.transaction(
      async (block: BlockHeader | { number: -1; hash: null }, head: number) => {
        // The chain may have been scanned under another name (a network renamed
        // in the config): scanning it again from here would miss what it found.
        const other = (await store.cursors()).find((row) => row.chain_id === chainId);
        if (other) {
          throw new ChainMismatchError(
            `the database scanned chain ${chainId} as network "${other.network}", and the config calls it "${name}": name it "${other.network}" again`,
          );
        }
        if ("parentHash" in block) await rememberBlocks([block], block.number);
        await store.setCursor({
          network: name,
          chain_id: chainId,
          token,
          block_number: block.number,
          block_hash: block.hash,
          head_number: head,
          updated_at: clock.now(),
        });
      },
    ),
    async filter(transfers: readonly TokenTransfer[]) {
      const kept: TokenTransfer[] = [];
      for (const transfer of transfers) {
        if ((await store.paymentIdByAddress(transfer.to)) !== undefined) kept.push(transfer);
      }
      return kept;
    },
    blockHash: (number) => store.blockHash(name, number),
    async applyBatch(batch) {
      if ((await applyBatch(batch)) > 0) onEvents();
    },
    async rewind(ancestor, head) {
      if ((await rewind(ancestor, head)) > 0) onEvents();
    },
    async applyHead(head) {
      if ((await applyHead(head)) > 0) onEvents();
    },
  };
}
