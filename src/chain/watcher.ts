/**
 * Follows the token's Transfer logs from a persisted cursor. Polling is the
 * source of truth: no filters or subscriptions that can silently drop logs.
 *
 * Below the finality depth it scans block ranges with eth_getLogs, adapting
 * the range to what the provider accepts. Within the unfinalized window it
 * goes block by block: header by number, logs by block hash, and the header's
 * parentHash checked against the hash recorded for the block before, so a
 * reorg is seen on the hash chain (anvil and many providers never send
 * `removed: true` logs) and rewound to the common ancestor.
 */
import type { Clock } from "../internal/clock.ts";
import { ChainMismatchError, errorMessage, shouldRetry } from "../internal/errors.ts";
import type { Logger } from "../internal/logger.ts";
import type { ChainClient } from "./client.ts";
import { classifyProviderError } from "./errors.ts";
import type { BlockHeader, ChainSink, TokenTransfer } from "./types.ts";

/** Polls in a row with the head below the cursor before it counts as a rollback, not lag. */
const SHORTER_CHAIN_TICKS = 3;

export type WatcherStats = {
  /** Current eth_getLogs range, in blocks. */
  range: number;
  rangeShrinks: number;
  rateLimited: number;
  reorgs: number;
  /** Deepest reorg seen, in blocks. */
  deepestReorg: number;
  /** The newest head the provider answered (eth_blockNumber); null before its first answer. */
  head: number | null;
  /** When (clock ms) that answer first gave `head`: the head has not moved since. */
  headSince: number | null;
};

export type ChainWatcher = {
  /** Runs until `signal` aborts. Rejects only on a non-retryable error (wrong chain). */
  run(signal: AbortSignal): Promise<void>;
  /**
   * One poll: check the hash chain and scan every new block up to the head.
   * With `signal`, stops between two batches once it aborts (a stop waits
   * for the batch under way, not for a whole catch-up).
   */
  tick(signal?: AbortSignal): Promise<void>;
  /** Poll now instead of at the next interval (a websocket saw a new head). */
  wake(): void;
  stats(): WatcherStats;
};

export function createChainWatcher({
  client,
  sink,
  clock,
  logger,
  chainId,
  token,
  decimals,
  configKey = "chain",
  network,
  pollIntervalMs,
  maxBlockRange,
  finalityDepth,
  startBlock,
  maxBackoffMs = 60_000,
}: {
  client: ChainClient;
  sink: ChainSink;
  clock: Clock;
  logger: Logger;
  chainId: number;
  token: string;
  /**
   * The decimals the config says the token has: checked once against its
   * `decimals()` before the first scan; undefined: not checked.
   */
  decimals?: number | undefined;
  /** Where the network sits in the config ("chain", "networks.1"), for messages. */
  configKey?: string;
  /** The network's name, for logs; undefined: the only one. */
  network?: string | undefined;
  pollIntervalMs: number;
  maxBlockRange: number;
  /** Blocks below head − finalityDepth are taken as final and scanned by range. */
  finalityDepth: number;
  startBlock?: number | undefined;
  maxBackoffMs?: number;
}): ChainWatcher {
  const log = logger.child(
    network === undefined ? { module: "chain" } : { module: "chain", network },
  );
  const named = network === undefined ? "" : ` (${network})`;
  const stats: WatcherStats = {
    range: maxBlockRange,
    rangeShrinks: 0,
    rateLimited: 0,
    reorgs: 0,
    deepestReorg: 0,
    head: null,
    headSince: null,
  };
  let verified = false;
  let lastHead = -1;
  let successes = 0;
  let wakeUp: (() => void) | undefined;
  let wokenEarly = false;
  let behindTicks = 0;

  async function verify() {
    if (verified) return;
    const actual = await client.chainId();
    if (actual !== chainId) {
      throw new ChainMismatchError(
        `${configKey}.chainId${named} is ${chainId} but the RPC provider serves chain ${actual}`,
      );
    }
    if (decimals !== undefined) {
      const onChain = await client.decimals(token);
      if (onChain === undefined) {
        log.warn(
          { token },
          "the token does not answer decimals(): is there a contract at this address on this chain? (0xbtcpay doctor checks it)",
        );
      } else if (onChain !== decimals) {
        throw new ChainMismatchError(
          `${configKey}.decimals${named} is ${decimals} but the token ${token} answers decimals() ${onChain}: amounts would be misread`,
        );
      }
    }
    verified = true;
  }

  /** Walks back from `from` to the newest block whose recorded hash the chain still has. */
  async function rewindFrom(from: number, head: number) {
    let number = from;
    let hash: string | null = null;
    for (; number >= 0; number--) {
      const recorded = await sink.blockHash(number);
      if (recorded === undefined) {
        // Beyond the window we keep: treat it as final (finalityDepth says so).
        hash = null;
        break;
      }
      const remote = await client.block(number);
      if (remote.hash === recorded) {
        hash = recorded;
        break;
      }
    }
    const cursor = await sink.cursor();
    const depth = (cursor?.blockNumber ?? number) - number;
    stats.reorgs++;
    stats.deepestReorg = Math.max(stats.deepestReorg, depth);
    log.warn({ ancestor: number, depth, head }, "reorg: rewinding to the common ancestor");
    await sink.rewind({ number, hash }, head);
  }

  /** Fetches block timestamps for the blocks of `transfers` (only those that matter). */
  async function withTimestamps(
    transfers: TokenTransfer[],
    known?: BlockHeader,
  ): Promise<TokenTransfer[]> {
    const times = new Map<number, number>();
    if (known) times.set(known.number, known.timestamp);
    for (const t of transfers) {
      if (!times.has(t.blockNumber)) {
        const header = await client.block(t.blockNumber);
        if (header.hash !== t.blockHash) {
          throw new Error(
            `block ${t.blockNumber} changed while scanning (reorg below the finality depth?)`,
          );
        }
        times.set(t.blockNumber, header.timestamp);
      }
    }
    return transfers.map((t) => ({ ...t, blockTimestamp: times.get(t.blockNumber) as number }));
  }

  /**
   * Scans `from..target` with eth_getLogs in ranges the provider accepts
   * (shrinking on its "too large" answer), handing each range to the sink.
   */
  async function scanRange(from: number, target: number, head: number): Promise<void> {
    for (;;) {
      const to = Math.min(target, from + stats.range - 1);
      let transfers: TokenTransfer[];
      try {
        transfers = await client.transfers({ token, fromBlock: from, toBlock: to });
      } catch (error) {
        const kind = classifyProviderError(error, { fromBlock: from, now: clock.now() });
        if (kind.kind !== "range" || to === from) throw error;
        const size = to - from + 1;
        const next = Math.max(1, Math.min(kind.suggestedSize ?? Math.floor(size / 2), size - 1));
        stats.range = next;
        stats.rangeShrinks++;
        successes = 0;
        log.warn(
          {
            from_block: from,
            to_block: to,
            range: size,
            new_range: next,
            err: errorMessage(error),
          },
          "eth_getLogs range too large for the provider: shrinking",
        );
        continue;
      }
      // Grow back slowly: the provider's limit may have been a passing one.
      if (++successes >= 5 && stats.range < maxBlockRange) {
        stats.range = Math.min(maxBlockRange, Math.ceil(stats.range * 1.5));
        successes = 0;
      }
      const matched = await withTimestamps(await sink.filter(transfers));
      const last = await client.block(to);
      await sink.applyBatch({
        fromBlock: from,
        toBlock: to,
        blocks: [last],
        head,
        transfers: matched,
      });
      log.debug(
        { from_block: from, to_block: to, transfers: transfers.length, matched: matched.length },
        "scanned range",
      );
      return;
    }
  }

  /** One unfinalized block: header, parent check, logs by hash. False if a reorg was found. */
  async function scanBlock(
    number: number,
    parentHash: string | null,
    head: number,
  ): Promise<boolean> {
    const header = await client.block(number);
    if (parentHash !== null && header.parentHash !== parentHash) {
      await rewindFrom(number - 1, head);
      return false;
    }
    const transfers = await client.transfersInBlock({ token, block: header });
    const matched = await withTimestamps(await sink.filter(transfers), header);
    await sink.applyBatch({
      fromBlock: number,
      toBlock: number,
      blocks: [header],
      head,
      transfers: matched,
    });
    return true;
  }

  async function tick(signal?: AbortSignal) {
    await verify();
    const head = await client.blockNumber();
    if (head !== stats.head) {
      stats.head = head;
      stats.headSince = clock.now();
    }
    let cursor = await sink.cursor();
    if (!cursor) {
      const first = startBlock ?? head;
      if (first > 0) await sink.initCursor(await client.block(first - 1), head);
      else await sink.initCursor({ number: -1, hash: null }, head);
      cursor = await sink.cursor();
      if (!cursor) throw new Error("cursor not initialised");
      log.info({ block_number: first, head }, "first start: scanning from this block");
    }
    if (head >= cursor.blockNumber) behindTicks = 0;
    if (head < cursor.blockNumber) {
      // Either the chain really got shorter (a reorg to a shorter chain, a
      // rollback) or this provider lags behind. Only the hash of a block we
      // recorded tells which: rewind on a mismatch, wait on a match.
      // A lagging backend answers in a poll or two; a chain that stays
      // shorter, or whose block at `head` changed, was really cut back.
      behindTicks++;
      const recorded = await sink.blockHash(head);
      const remote = recorded === undefined ? undefined : await client.block(head);
      if (recorded !== undefined && remote && remote.hash !== recorded) {
        await rewindFrom(head, head);
      } else if (behindTicks >= SHORTER_CHAIN_TICKS) {
        log.warn(
          { head, cursor: cursor.blockNumber },
          "the chain stayed shorter than the cursor: rewinding",
        );
        await rewindFrom(head, head);
      } else {
        log.warn(
          { head, cursor: cursor.blockNumber },
          "provider head is behind the cursor; waiting",
        );
      }
      return;
    }
    // The block at the cursor may have been replaced at the same height.
    if (cursor.blockHash !== null && cursor.blockNumber >= 0) {
      const current = await client.block(cursor.blockNumber);
      if (current.hash !== cursor.blockHash) await rewindFrom(cursor.blockNumber - 1, head);
    }
    const behind = head - ((await sink.cursor())?.blockNumber ?? head);
    if (behind > stats.range) log.info({ head, blocks: behind }, "catching up");
    for (;;) {
      if (signal?.aborted) return;
      // NOTE: read again before each batch: `0xbtcpay rescan` may have moved
      // it back meanwhile (the sink drops a batch that does not start right
      // after the stored cursor).
      cursor = await sink.cursor();
      if (!cursor || cursor.blockNumber >= head) break;
      const from = cursor.blockNumber + 1;
      const finalTarget = head - finalityDepth;
      if (from <= finalTarget) await scanRange(from, finalTarget, head);
      else await scanBlock(from, cursor.blockHash, head);
    }
    if (head !== lastHead) await sink.applyHead(head);
    lastHead = head;
  }

  return {
    tick,
    stats: () => ({ ...stats }),
    wake() {
      wokenEarly = true;
      wakeUp?.();
    },
    async run(signal) {
      let failures = 0;
      while (!signal.aborted) {
        let delay = pollIntervalMs;
        wokenEarly = false;
        let before: number | undefined;
        try {
          // NOTE: inside the try: the database may be unreachable too
          // (PostgreSQL restarting), which is retried like the provider.
          before = (await sink.cursor())?.blockNumber;
          await tick(signal);
          if (failures > 0) log.info({ failures }, "chain provider recovered");
          failures = 0;
        } catch (error) {
          if (!shouldRetry(error)) throw error;
          // A poll that got some blocks scanned before failing is progress:
          // keep the backoff short rather than let it grow towards the cap.
          const after = await sink.cursor().then(
            (cursor) => cursor?.blockNumber,
            () => before,
          );
          const progressed = (after ?? before) !== before;
          failures = progressed ? 1 : failures + 1;
          const kind = classifyProviderError(error, { now: clock.now() });
          if (kind.kind === "rate") {
            stats.rateLimited++;
            delay =
              kind.retryAfterMs ??
              Math.min(maxBackoffMs, pollIntervalMs * 2 ** Math.min(failures, 10));
            log.warn(
              { retry_in_ms: delay, err: errorMessage(error) },
              "rate limited by the provider: backing off",
            );
          } else {
            // Exponential backoff from the poll interval.
            delay = Math.min(maxBackoffMs, pollIntervalMs * 2 ** Math.min(failures, 10));
            log.warn(
              { err: errorMessage(error), failures, retry_in_ms: delay },
              "chain poll failed",
            );
          }
        }
        if (wokenEarly && failures === 0) continue;
        await new Promise<void>((resolve) => {
          // A websocket head must not cut short a backoff (or a Retry-After).
          wakeUp = failures === 0 ? resolve : undefined;
          void clock.sleep(delay, signal).then(resolve);
        });
        wakeUp = undefined;
      }
    },
  };
}
