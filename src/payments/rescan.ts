/**
 * `0xbtcpay rescan`: moves the scan cursor back so that blocks are read
 * again, by the running daemon at its next poll or by the next start.
 *
 * Nothing else changes: no transfer is deleted and no payment touched. Read
 * again, a transfer already recorded is ignored (keyed by tx_hash and
 * log_index), so it changes no state and queues no event; one that is
 * missing is recorded and its payment re-decided by the lifecycle, in the
 * transaction that moves the cursor forward again, as on the first scan.
 * A running daemon's batch in flight when the cursor moves is dropped by
 * the sink (it no longer starts right after the stored cursor).
 */
import { ChainMismatchError } from "../internal/errors.ts";
import type { Storage } from "../store/storage.ts";
import { LEGACY_NETWORK } from "../store/storage.ts";
import { RescanError } from "./errors.ts";

export type Rescan = {
  /** The cursor before: the last block that was fully recorded. */
  from: number;
  /** The cursor now: block `fromBlock − 1`. Equal to `from` when there was nothing to move. */
  to: number;
};

/**
 * Moves the stored scan cursor of `network` (chain `chainId`, token
 * `token`) to `fromBlock − 1`. Other networks' cursors do not move.
 */
export async function rescanFrom({
  storage,
  network = LEGACY_NETWORK,
  chainId,
  token,
  startBlock,
  fromBlock,
  now,
}: {
  storage: Storage;
  /** The network's name; default the single chain's ("ethereum"). */
  network?: string;
  chainId: number;
  token: string;
  /** The network's `startBlock`: the daemon never scans below it. */
  startBlock: number | undefined;
  fromBlock: number;
  now: number;
}): Promise<Rescan> {
  const store = storage.payments;
  return storage.transaction(async (): Promise<Rescan> => {
    const single = network === LEGACY_NETWORK;
    const cursor = await store.getCursor(network);
    if (!cursor) {
      throw new RescanError(
        single
          ? "the daemon has not scanned anything yet: its first start begins at chain.startBlock (or at the head); nothing to rescan"
          : `the daemon has not scanned network ${network} yet: its first scan begins at its startBlock (or at its head); nothing to rescan`,
      );
    }
    if (cursor.chain_id !== chainId || cursor.token !== token) {
      throw new ChainMismatchError(
        `the database was written for chain ${cursor.chain_id} token ${cursor.token}, not chain ${chainId} token ${token}${single ? "" : ` (network ${network})`}: use a new database.path`,
      );
    }
    const next = cursor.block_number + 1;
    if (fromBlock > next) {
      throw new RescanError(
        `block ${fromBlock} is above the scan position: the daemon has read up to block ${cursor.block_number} and reads block ${next} next`,
      );
    }
    if (startBlock !== undefined && fromBlock < startBlock) {
      const key = single ? "chain.startBlock" : `the startBlock of network ${network}`;
      throw new RescanError(
        `block ${fromBlock} is below ${key} (${startBlock}), where the scan began: lower ${single ? key : "it"} in the config first if funds can be there`,
      );
    }
    if (fromBlock === next) return { from: cursor.block_number, to: cursor.block_number };
    await store.moveCursor(network, {
      block_number: fromBlock - 1,
      // NOTE: the hash the watcher recorded for that block, if it is still in
      // the window of recent headers; beyond it the block counts as final,
      // as it does everywhere else, and no parent hash is checked against it.
      block_hash: (await store.blockHash(network, fromBlock - 1)) ?? null,
      head_number: cursor.head_number,
      updated_at: now,
    });
    return { from: cursor.block_number, to: fromBlock - 1 };
  });
}
