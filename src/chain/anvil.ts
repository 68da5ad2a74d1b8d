/**
 * A local anvil chain with the test 0xBTC token deployed: the embedded chain
 * of `0xbtcpay dev`, and the real chain the tests run against.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createAnvil } from "@viem/anvil";
import {
  type Chain,
  createTestClient,
  defineChain,
  type Hex,
  http,
  publicActions,
  walletActions,
} from "viem";
import { foundry } from "viem/chains";
import { testTokenAbi, testTokenBytecode } from "../../contracts-abi/index.ts";
import { AnvilMissingError } from "../internal/errors.ts";

/** Anvil's well-known test mnemonic; its accounts are funded with ETH. */
export const ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

/**
 * xpub of m/44'/60'/1'/0 of the test mnemonic: the dev daemon's deposit
 * addresses. Account 1' rather than 0' so deposit addresses never collide
 * with anvil's funded accounts (m/44'/60'/0'/0/i).
 */
export const DEV_XPUB =
  "xpub6EFHUEbYV13535ChA9yg5xZTWowwFCmFoWnhLbwkd91xHoirGu89GTZwBSUBnBpFeY5EV2cgof8yuyDnkeGALcD8DgGYJSiQfkxKpunWTX1";

/** Anvil's first ten accounts (m/44'/60'/0'/0/0..9 of the test mnemonic). */
export const ANVIL_ACCOUNTS = [
  "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
  "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
  "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
  "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
  "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
  "0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc",
  "0x976ea74026e726554db657fa54763abd0c3a0aa9",
  "0x14dc79964da2c08b23698b3d3cc7ca32193d9955",
  "0x23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f",
  "0xa0ee7a142d267c1f36714e4a8f75612f20a79720",
] as const satisfies readonly Hex[];

/**
 * Path of the anvil binary shipped by the `@foundry-rs/anvil` npm package (a
 * devDependency). Throws AnvilMissingError where it is not installed, as in a
 * production install.
 */
export function anvilBinaryPath(): string {
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const platform = process.platform;
  const pkg = `@foundry-rs/anvil-${platform}-${arch}`;
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch (error) {
    throw new AnvilMissingError({ cause: error });
  }
  return join(dir, "bin", platform === "win32" ? "anvil.exe" : "anvil");
}

export type LocalChain = Awaited<ReturnType<typeof startLocalChain>>;

/**
 * Starts anvil on 127.0.0.1: on `port`, or on a free port anvil binds itself
 * (no `port`, or 0). With `blockTime` it mines on a timer (dev); without, it
 * mines only when told to (`mine`), which is what tests want. Rejects if the
 * port is taken. With `fork`, anvil forks that network (at its head, or at
 * `fork.blockNumber`) and keeps its chain id; otherwise the chain id is
 * `chainId` (default 31337), so that two local chains can stand for two
 * networks.
 */
export async function startLocalChain({
  port = 0,
  blockTime,
  fork,
  chainId = foundry.id,
}: {
  port?: number;
  blockTime?: number;
  fork?: { url: string; blockNumber?: number | undefined } | undefined;
  chainId?: number;
} = {}) {
  // NOTE: port 0 lets anvil bind a free port and print it. Picking a free
  // port first and handing its number to anvil leaves a moment in which
  // another process (a parallel test file's anvil) can take it.
  const anvil = createAnvil({
    anvilBinary: anvilBinaryPath(),
    host: "127.0.0.1",
    port,
    ...(fork
      ? {
          forkUrl: fork.url,
          ...(fork.blockNumber === undefined ? {} : { forkBlockNumber: fork.blockNumber }),
        }
      : { chainId }),
    startTimeout: 60_000,
    ...(blockTime ? { blockTime } : { noMining: true }),
  });
  let output = "";
  const stopReading = anvil.on("message", (message: string) => {
    output += message;
  });
  try {
    await anvil.start();
  } finally {
    stopReading();
  }
  // start() resolves on the line "Listening on 127.0.0.1:<port>".
  const listening = /Listening on 127\.0\.0\.1:([0-9]+)/.exec(output);
  if (!listening) {
    await anvil.stop();
    throw new Error(`anvil did not say which port it listens on: ${output.slice(-200)}`);
  }
  const chosenPort = Number(listening[1]);
  const rpcUrl = `http://127.0.0.1:${chosenPort}`;
  // A fork keeps the forked network's chain id.
  const chain: Chain = fork
    ? defineChain({ ...foundry, id: await chainIdAt(rpcUrl) })
    : chainId === foundry.id
      ? foundry
      : defineChain({ ...foundry, id: chainId });
  const client = createTestClient({
    mode: "anvil",
    chain,
    transport: http(rpcUrl, { retryCount: 0 }),
    pollingInterval: 50,
  })
    .extend(publicActions)
    .extend(walletActions);

  async function mine(blocks = 1) {
    await client.mine({ blocks });
  }

  /** Sends a transaction from an unlocked anvil account and waits until it is mined. */
  async function send(hash: Hex): Promise<Hex> {
    if (!blockTime) await mine(1);
    const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
    if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted`);
    return hash;
  }

  async function deployToken(): Promise<Hex> {
    const hash = await client.deployContract({
      abi: testTokenAbi,
      bytecode: testTokenBytecode,
      account: ANVIL_ACCOUNTS[0],
    });
    if (!blockTime) await mine(1);
    const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
    if (!receipt.contractAddress) throw new Error("token deployment failed");
    return receipt.contractAddress.toLowerCase() as Hex;
  }

  async function submitTransfer({
    token,
    from,
    to,
    value,
  }: {
    token: Hex;
    from: Hex;
    to: Hex;
    value: bigint;
  }): Promise<Hex> {
    return client.writeContract({
      address: token,
      abi: testTokenAbi,
      functionName: "transfer",
      args: [to, value],
      account: from,
      chain,
    });
  }

  return {
    rpcUrl,
    port: chosenPort,
    chainId: chain.id,
    client,
    mine,
    deployToken,
    /** Mints `value` base units to `to` and mines it (in tests). */
    async mint(token: Hex, to: Hex, value: bigint) {
      return send(
        await client.writeContract({
          address: token,
          abi: testTokenAbi,
          functionName: "mint",
          args: [to, value],
          account: ANVIL_ACCOUNTS[0],
          chain,
        }),
      );
    },
    /**
     * Submits a token transfer without waiting for it to be mined: the
     * caller mines (tests) or the block timer does (dev).
     */
    submitTransfer,
    /** Transfers and waits until the transfer is in a block. */
    async transfer(params: { token: Hex; from: Hex; to: Hex; value: bigint }) {
      return send(await submitTransfer(params));
    },
    async balanceOf(token: Hex, owner: Hex): Promise<bigint> {
      return client.readContract({
        address: token,
        abi: testTokenAbi,
        functionName: "balanceOf",
        args: [owner],
      });
    },
    /**
     * Gives `to` a balance of `value` base units of any ERC-20 (anvil finds
     * the balance slot), e.g. the real token on a fork.
     */
    async deal(token: Hex, to: Hex, value: bigint) {
      await rpcCall(rpcUrl, "anvil_dealERC20", [to, token, `0x${value.toString(16)}`]);
    },
    /**
     * Mines a block every `seconds` from now on (`evm_setIntervalMining`):
     * `dev` sets its chains up mining on demand (each setup transaction in
     * a block at once), then lets them tick like a real network.
     */
    async startMining(seconds: number) {
      await rpcCall(rpcUrl, "evm_setIntervalMining", [seconds]);
    },
    stop: () => anvil.stop(),
  };
}

/** One JSON-RPC call to anvil, for its methods viem does not type. */
async function rpcCall(rpcUrl: string, method: string, params: unknown[]): Promise<unknown> {
  const response = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = (await response.json()) as { result?: unknown; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

/** eth_chainId of the node at `rpcUrl`. */
async function chainIdAt(rpcUrl: string): Promise<number> {
  return Number(await rpcCall(rpcUrl, "eth_chainId", []));
}
