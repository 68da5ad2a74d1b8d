/**
 * Follows the token's Transfer logs block range by block range from a
 * persisted cursor. Polling is the source of truth: no filters or
 * subscriptions that can silently drop logs.
 */
import type { Clock } from "../internal/clock.ts";
import { ChainMismatchError, errorMessage, shouldRetry } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { ChainClient } from "./client.ts";
import type { ChainSink } from "./types.ts";

export type ChainWatcher = {
  /** Runs until `signal` aborts. Rejects only on a non-retryable error (wrong chain). */
  run(signal: AbortSignal): Promise<void>;
  /** One poll: scan every new block up to the head. Exposed for tests and tools. */
  tick(): Promise<void>;
};

export function createChainWatcher({
  client,
  sink,
  clock,
  logger,
  chainId,
  token,
  pollIntervalMs,
  maxBlockRange,
  startBlock,
}: {
  client: ChainClient;
  sink: ChainSink;
  clock: Clock;
  logger: Logger;
  chainId: number;
  token: string;
  pollIntervalMs: number;
  maxBlockRange: number;
  startBlock?: number | undefined;
}): ChainWatcher {
  const log = logger.child({ module: "chain" });
  let verified = false;
  let lastHead = -1;

  async function verify() {
    if (verified) return;
    const actual = await client.chainId();
    if (actual !== chainId) {
      throw new ChainMismatchError(
        `chain.chainId is ${chainId} but the RPC provider serves chain ${actual}`,
      );
    }
    verified = true;
  }

  async function tick() {
    await verify();
    const head = await client.blockNumber();
    let cursor = sink.cursor();
    if (!cursor) {
      const first = startBlock ?? head;
      const before = Math.max(0, first - 1);
      cursor = {
        blockNumber: first - 1,
        blockHash: first > 0 ? await client.blockHash(before) : null,
      };
      sink.initCursor({ ...cursor, head });
      log.info({ block_number: first, head }, "first start: scanning from this block");
    }
    if (head < cursor.blockNumber) {
      // The provider is behind what we already scanned: wait for it.
      log.warn({ head, cursor: cursor.blockNumber }, "provider head is behind the cursor");
      return;
    }
    let from = cursor.blockNumber + 1;
    const behind = head - cursor.blockNumber;
    if (behind > maxBlockRange) log.info({ from_block: from, head, blocks: behind }, "catching up");
    while (from <= head) {
      const to = Math.min(head, from + maxBlockRange - 1);
      const transfers = await client.transfers({ token, fromBlock: from, toBlock: to });
      const toBlockHash = await client.blockHash(to);
      sink.applyBatch({ fromBlock: from, toBlock: to, toBlockHash, head, transfers });
      log.debug({ from_block: from, to_block: to, transfers: transfers.length }, "scanned");
      from = to + 1;
    }
    if (head !== lastHead && behind === 0) sink.applyHead(head);
    lastHead = head;
  }

  return {
    tick,
    async run(signal) {
      let failures = 0;
      while (!signal.aborted) {
        let delay = pollIntervalMs;
        try {
          await tick();
          if (failures > 0) log.info({ failures }, "chain provider recovered");
          failures = 0;
        } catch (error) {
          if (!shouldRetry(error)) throw error;
          failures++;
          // Exponential backoff from the poll interval, capped at 60 s.
          delay = Math.min(60_000, pollIntervalMs * 2 ** Math.min(failures, 10));
          log.warn({ err: errorMessage(error), failures, retry_in_ms: delay }, "chain poll failed");
        }
        await clock.sleep(delay, signal);
      }
    },
  };
}
