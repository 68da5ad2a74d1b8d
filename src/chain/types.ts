/** What the chain watcher hands to the payment logic. */

/** One ERC-20 Transfer log of the watched token. */
export type TokenTransfer = {
  txHash: string;
  logIndex: number;
  blockNumber: number;
  blockHash: string;
  from: string;
  to: string;
  value: bigint;
};

/** All the token's transfers in blocks `fromBlock..toBlock`, complete. */
export type ScanBatch = {
  fromBlock: number;
  toBlock: number;
  toBlockHash: string;
  /** The chain head when the batch was fetched. */
  head: number;
  transfers: TokenTransfer[];
};

export type ScanCursor = { blockNumber: number; blockHash: string | null };

/**
 * The watcher's consumer. `applyBatch` must record the batch's effects and
 * move the cursor to `toBlock` in one transaction, so a crash between the two
 * is impossible.
 */
export type ChainSink = {
  cursor(): ScanCursor | undefined;
  /** Called once, on the very first start, with the block before the first one to scan. */
  initCursor(cursor: ScanCursor & { head: number }): void;
  applyBatch(batch: ScanBatch): void;
  /** A new head with no new blocks to scan: recount confirmations. */
  applyHead(head: number): void;
};
