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
  /** UNIX seconds of the block; set by the watcher for the transfers it hands over. */
  blockTimestamp?: number;
};

export type BlockHeader = {
  number: number;
  hash: string;
  parentHash: string;
  /** UNIX seconds. */
  timestamp: number;
};

/**
 * The watched token's transfers in blocks `fromBlock..toBlock` that pay a
 * watched address (every other transfer is dropped by `ChainSink.filter`),
 * each with its block's timestamp, plus the headers the watcher checked.
 */
export type ScanBatch = {
  fromBlock: number;
  toBlock: number;
  /** Headers to remember for reorg checks; the last one is `toBlock`'s. */
  blocks: BlockHeader[];
  /** The chain head when the batch was fetched. */
  head: number;
  transfers: TokenTransfer[];
};

export type ScanCursor = { blockNumber: number; blockHash: string | null };

/**
 * The watcher's consumer. `applyBatch` and `rewind` must record their effects
 * and move the cursor in one transaction, so a crash between the two is
 * impossible. The cursor may also move back from outside (an operator's
 * rescan): `applyBatch` then drops a batch that no longer starts right after
 * it, and the watcher reads the cursor again before each batch.
 */
export type ChainSink = {
  cursor(): Promise<ScanCursor | undefined>;
  /** Called once, on the very first start, with the block before the first one to scan. */
  initCursor(block: BlockHeader | { number: -1; hash: null }, head: number): Promise<void>;
  /** The transfers that pay a watched address (matching is ours, not the provider's). */
  filter(transfers: readonly TokenTransfer[]): Promise<TokenTransfer[]>;
  applyBatch(batch: ScanBatch): Promise<void>;
  /** The hash recorded for block `number`, if it is still in the unfinalized window. */
  blockHash(number: number): Promise<string | undefined>;
  /**
   * A reorg replaced the blocks above `ancestor`: forget them and their
   * transfers, recompute the payments they touched, move the cursor back.
   */
  rewind(ancestor: { number: number; hash: string | null }, head: number): Promise<void>;
  /** A new head with no new blocks to scan: recount confirmations. */
  applyHead(head: number): Promise<void>;
};
