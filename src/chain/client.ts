/**
 * The few JSON-RPC calls the watcher makes, over viem's HTTP transport.
 * Logs are requested raw and decoded here: viem's per-log ABI decoding is the
 * slow part of matching, and a Transfer log has a fixed shape.
 */
import { createPublicClient, type Hex, http, type PublicClient } from "viem";
import { TRANSFER_TOPIC } from "../../contracts-abi/index.ts";
import { ChainRpcError } from "../internal/errors.ts";
import type { BlockHeader, TokenTransfer } from "./types.ts";

export type ChainClient = {
  chainId(): Promise<number>;
  blockNumber(): Promise<number>;
  /** Header of block `number`; throws if the provider does not have it. */
  block(number: number): Promise<BlockHeader>;
  /**
   * All Transfer logs of `token` in the block with this hash. A provider that
   * does not know the block fails ("unknown block") rather than answering
   * with an empty list, which a range query would do.
   */
  transfersInBlock(params: { token: string; block: BlockHeader }): Promise<TokenTransfer[]>;
  /**
   * What `token`'s `decimals()` answers at the head; undefined if it answers
   * nothing a uint8 can be read from (no contract at that address).
   */
  decimals(token: string): Promise<number | undefined>;
  /** All Transfer logs of `token` in blocks `fromBlock..toBlock`. */
  transfers(params: {
    token: string;
    fromBlock: number;
    toBlock: number;
  }): Promise<TokenTransfer[]>;
  /** The underlying viem client, for anything else. */
  viem: PublicClient;
};

/** One JSON-RPC call as the client made it: told to `onCall` (metrics, readiness). */
export type RpcCallRecord = {
  method: string;
  durationMs: number;
  /** What the call threw (before it was wrapped in ChainRpcError); undefined: it answered. */
  error: unknown;
};

type RawLog = {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string | null;
  blockHash: string | null;
  transactionHash: string | null;
  logIndex: string | null;
  removed?: boolean;
};

const toHex = (n: number): Hex => `0x${n.toString(16)}`;

/** The selector of ERC-20 `decimals()`. */
const DECIMALS_SELECTOR = "0x313ce567";

/** Whether a failed call's causes say the node executed it and it reverted (JSON-RPC code 3). */
function reverted(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 10; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === 3 || (typeof message === "string" && /execution reverted/i.test(message))) {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Decodes raw logs into transfers, skipping pending logs and logs that are
 * not a standard 3-topic ERC-20 Transfer (an ERC-721 Transfer has 4).
 */
export function decodeTransferLogs(logs: readonly RawLog[]): TokenTransfer[] {
  const transfers: TokenTransfer[] = [];
  for (const log of logs) {
    const [topic0, fromTopic, toTopic] = log.topics;
    if (log.topics.length !== 3 || topic0 !== TRANSFER_TOPIC || !fromTopic || !toTopic) continue;
    if (
      log.removed ||
      !log.blockNumber ||
      !log.blockHash ||
      !log.transactionHash ||
      !log.logIndex
    ) {
      continue;
    }
    if (!/^0x[0-9a-fA-F]{1,64}$/.test(log.data)) continue;
    transfers.push({
      txHash: log.transactionHash.toLowerCase(),
      logIndex: Number(log.logIndex),
      blockNumber: Number(log.blockNumber),
      blockHash: log.blockHash.toLowerCase(),
      from: `0x${fromTopic.slice(26).toLowerCase()}`,
      to: `0x${toTopic.slice(26).toLowerCase()}`,
      value: BigInt(log.data),
    });
  }
  return transfers;
}

export function createChainClient({
  rpcUrl,
  timeoutMs = 15_000,
  onCall,
}: {
  rpcUrl: string;
  timeoutMs?: number;
  /** Told every call, answered or failed, with its duration; must not throw. */
  onCall?: ((call: RpcCallRecord) => void) | undefined;
}): ChainClient {
  // NOTE: retries are the watcher's (it never advances the cursor past a
  // failure), so the transport does not retry on its own.
  const viem = createPublicClient({
    transport: http(rpcUrl, { retryCount: 0, timeout: timeoutMs }),
  });

  async function call<T>(method: string, params: unknown[]): Promise<T> {
    const started = performance.now();
    try {
      const result = (await viem.request({ method, params } as never)) as T;
      onCall?.({ method, durationMs: performance.now() - started, error: undefined });
      return result;
    } catch (cause) {
      onCall?.({ method, durationMs: performance.now() - started, error: cause });
      const detail =
        cause instanceof Error
          ? ((cause as { shortMessage?: string }).shortMessage ?? cause.message)
          : String(cause);
      throw new ChainRpcError(`${method} failed: ${detail}`, { cause });
    }
  }

  return {
    async chainId() {
      return Number(await call<string>("eth_chainId", []));
    },
    async blockNumber() {
      return Number(await call<string>("eth_blockNumber", []));
    },
    async block(number) {
      const block = await call<{
        number: string;
        hash: string;
        parentHash: string;
        timestamp: string;
      } | null>("eth_getBlockByNumber", [toHex(number), false]);
      if (!block?.hash) throw new ChainRpcError(`block ${number} not available from the provider`);
      if (Number(block.number) !== number) {
        throw new ChainRpcError(
          `asked for block ${number}, the provider answered block ${Number(block.number)}`,
        );
      }
      return {
        number,
        hash: block.hash.toLowerCase(),
        parentHash: block.parentHash.toLowerCase(),
        timestamp: Number(block.timestamp),
      };
    },
    async decimals(token) {
      let answer: string;
      try {
        answer = await call<string>("eth_call", [{ to: token, data: DECIMALS_SELECTOR }, "latest"]);
      } catch (error) {
        // The node answered that the call reverted: no decimals() there.
        if (reverted(error)) return undefined;
        throw error;
      }
      // A uint8 in one 32-byte word; an address without code answers "0x".
      if (typeof answer !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(answer)) return undefined;
      const value = BigInt(answer);
      return value <= 255n ? Number(value) : undefined;
    },
    async transfers({ token, fromBlock, toBlock }) {
      const logs = await call<RawLog[]>("eth_getLogs", [
        {
          address: token,
          topics: [TRANSFER_TOPIC],
          fromBlock: toHex(fromBlock),
          toBlock: toHex(toBlock),
        },
      ]);
      if (!Array.isArray(logs)) throw new ChainRpcError("eth_getLogs returned no array");
      const transfers = decodeTransferLogs(logs);
      for (const t of transfers) {
        if (t.blockNumber < fromBlock || t.blockNumber > toBlock) {
          throw new ChainRpcError(
            `eth_getLogs ${fromBlock}-${toBlock} returned a log of block ${t.blockNumber}`,
          );
        }
      }
      return transfers;
    },
    async transfersInBlock({ token, block }) {
      const logs = await call<RawLog[]>("eth_getLogs", [
        { address: token, topics: [TRANSFER_TOPIC], blockHash: block.hash },
      ]);
      if (!Array.isArray(logs)) throw new ChainRpcError("eth_getLogs returned no array");
      const transfers = decodeTransferLogs(logs);
      for (const t of transfers) {
        if (t.blockHash !== block.hash || t.blockNumber !== block.number) {
          throw new ChainRpcError(
            `eth_getLogs by hash ${block.hash} returned a log of another block`,
          );
        }
      }
      return transfers;
    },
    viem,
  };
}
