import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import pretty from "pino-pretty";
import { createWalletClient, defineChain, erc20Abi, type Hex, http, isAddress } from "viem";
import { foundry } from "viem/chains";
import { MAINNET_0XBTC, testTokenAbi } from "../../../contracts-abi/index.ts";
import {
  ANVIL_ACCOUNTS,
  anvilBinaryPath,
  type LocalChain,
  startLocalChain,
} from "../../chain/anvil.ts";
import {
  type Config,
  defaultChainName,
  LEGACY_NETWORK,
  loadConfig,
  parseConfig,
} from "../../config/index.ts";
import { startDaemon } from "../../daemon.ts";
import { createLogger } from "../../internal/logger.ts";
import { parseAmount } from "../../payments/amount.ts";
import { sqlitePathOf } from "../options.ts";
import { exitOnError, onSignals } from "../run.ts";

const DEV_CONFIG = fileURLToPath(new URL("../../../config/dev.json", import.meta.url));
const STATE_DIR = resolve(".0xbtcpay-dev");
const STATE_FILE = resolve(STATE_DIR, "state.json");

/** One network of the running dev daemon, as `dev pay` reads it. */
type DevNetwork = { name: string; rpcUrl: string; chainId: number; token: Hex };

type DevState = {
  publicUrl: string;
  privateUrl: string;
  decimals: number;
  /** The networks the dev daemon watches, in config order: one, or two with `--networks 2`. */
  networks: DevNetwork[];
};

/** Tokens each of anvil's payer accounts (1..9) gets on start. */
const FAUCET_TOKENS = 1_000_000n;
/** Most local chains `dev --networks` starts. */
const MAX_DEV_NETWORKS = 2;
/** The chain id of the local chain beside the first (31338, or 31337 when the first has 31338). */
const SECOND_CHAIN_IDS = [31338, 31337];

/** A stand-in for the shop: prints every postback it receives. */
async function startDemoReceiver(
  print: (line: string) => void,
): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      print(`\n[demo shop] postback received: ${body}\n`);
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/payment_complete`, close: () => server.close() };
}

type DevOptions = {
  config: string;
  chainPort?: number;
  forkUrl?: string;
  forkBlock?: number;
  token?: Hex;
  networks: number;
};

/** A local chain of `dev`, set up: the network it stands for and its token. */
type LocalNetwork = {
  /** "ethereum", "polygon": the network's name in the config and on the wire. */
  name: string;
  /** What the checkout page calls it. */
  displayName: string;
  chain: LocalChain;
  token: Hex;
  /** A fork of a real network (else a blank chain with the test token). */
  fork: boolean;
  /** A fork's first block to scan: its history stays on the real network. */
  startBlock?: number;
};

/** anvil on `port`, else (taken: anvil exits at once) on a free port it picks itself. */
function startChain(
  port: number,
  options: {
    fork?: { url: string; blockNumber?: number | undefined } | undefined;
    chainId?: number;
  },
): Promise<LocalChain> {
  // NOTE: no block time: the chain mines on demand while `dev` sets it up
  // (each transaction in a block at once), then `startMining` makes it tick.
  return startLocalChain({ port, ...options }).catch(() => startLocalChain(options));
}

/**
 * The names of `dev --networks 2`: plain chains stand for Ethereum and
 * Polygon; a fork is the network it forks (Polygon for chain id 137, else
 * Ethereum) and the local chain beside it is the other one.
 */
function devNetworkNames(count: number, forkChainId?: number): string[] {
  if (count === 1) return [LEGACY_NETWORK];
  const first = forkChainId === 137 ? "polygon" : "ethereum";
  return [first, first === "polygon" ? "ethereum" : "polygon"];
}

/** "Ethereum (local)", "Polygon (local)": what a stand-in chain is called on the checkout page. */
function standInName(name: string): string {
  return `${name.charAt(0).toUpperCase()}${name.slice(1)} (local)`;
}

/**
 * The config of `dev` over its local networks: one network keeps the
 * config's single `chain` section (RPC URL, chain id and token replaced);
 * several become `networks`, each with the chain section's settings
 * (confirmations, poll interval, …), validated again as a file would be.
 */
function devConfig(
  config: Config,
  path: string,
  networks: readonly LocalNetwork[],
  dbPath: string,
): Config {
  const [only] = networks;
  if (networks.length === 1 && only) {
    const local = { rpcUrl: only.chain.rpcUrl, token: only.token, chainId: only.chain.chainId };
    // A fork's transactions exist only locally: no explorer link for them.
    const { explorerUrl: _explorer, ...chain } = config.chain;
    return {
      ...config,
      chain: only.fork
        ? {
            ...chain,
            ...local,
            name: only.displayName,
            ...(only.startBlock === undefined ? {} : { startBlock: only.startBlock }),
          }
        : { ...config.chain, ...local },
      database: { path: dbPath },
    };
  }
  const { chain: _chain, ...raw } = JSON.parse(readFileSync(path, "utf8")) as Record<
    string,
    unknown
  >;
  const { decimals, confirmations, pollIntervalMs, maxBlockRange, finalityDepth, symbol } =
    config.chain;
  const parsed = parseConfig({
    ...raw,
    networks: networks.map((network) => ({
      name: network.name,
      displayName: network.displayName,
      rpcUrl: network.chain.rpcUrl,
      chainId: network.chain.chainId,
      token: network.token,
      ...(network.startBlock === undefined ? {} : { startBlock: network.startBlock }),
      decimals,
      confirmations,
      pollIntervalMs,
      maxBlockRange,
      finalityDepth,
      symbol,
    })),
    database: { path: dbPath },
  });
  // NOTE: the networks get a block explorer by chain id (a fork of chain 1
  // would link Etherscan), but what happens here exists only locally.
  const { explorerUrl: _explorer, ...chain } = parsed.chain;
  return {
    ...parsed,
    chain,
    ...(parsed.networks
      ? { networks: parsed.networks.map(({ explorerUrl: _url, ...network }) => network) }
      : {}),
  };
}

async function runDev(options: DevOptions) {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  let config = (() => {
    try {
      return loadConfig({ path: options.config, env: {} });
    } catch (error) {
      exitOnError(error);
    }
  })();

  if (config.networks !== undefined) {
    exitOnError(
      new Error(
        `${options.config} has networks: dev makes its local networks from the config's single chain section (\`dev --networks 2\` for two); give it a config with chain`,
      ),
    );
  }
  try {
    anvilBinaryPath();
  } catch (error) {
    exitOnError(error);
  }
  const count = options.networks;
  const fork = options.forkUrl
    ? { url: options.forkUrl, blockNumber: options.forkBlock }
    : undefined;
  const beside = count === 1 ? "" : ", and a local chain beside it";
  print(
    fork
      ? `0xbtcpay dev: starting anvil as a fork of ${redactUrl(fork.url)}${fork.blockNumber === undefined ? "" : ` at block ${fork.blockNumber}`}${beside} (a block every second)…`
      : `0xbtcpay dev: starting ${count === 1 ? "a local anvil chain" : `${count} local anvil chains`} (a block every second)…`,
  );
  const unit = 10n ** BigInt(config.chain.decimals);

  /** A fork: the real token at its real address (or --token), checked before anything is funded. */
  async function setUpFork(chain: LocalChain, name: string): Promise<LocalNetwork> {
    const token = (options.token ?? MAINNET_0XBTC).toLowerCase() as Hex;
    const decimals = await chain.client
      .readContract({ address: token, abi: erc20Abi, functionName: "decimals" })
      .catch((error) => {
        throw new Error(
          `the token ${token} does not answer decimals() on the forked network: pass --token (${error instanceof Error ? error.message.split("\n")[0] : error})`,
        );
      });
    if (decimals !== config.chain.decimals) {
      throw new Error(
        `the token ${token} has ${decimals} decimals, the config says ${config.chain.decimals}`,
      );
    }
    // Scanning starts at the fork block: earlier history stays on the real network.
    const startBlock = Number(await chain.client.getBlockNumber());
    print(
      `watching the token at ${token} from block ${startBlock}${count === 1 ? "" : ` as network ${name}`}; funding anvil accounts 1-9…`,
    );
    for (const account of ANVIL_ACCOUNTS.slice(1)) {
      await chain.deal(token, account, FAUCET_TOKENS * unit);
    }
    const displayName = `${defaultChainName(chain.chainId)} (local fork)`;
    return { name, displayName, chain, token, fork: true, startBlock };
  }

  /** A blank chain: the test token deployed, anvil's accounts 1-9 funded. */
  async function setUpPlain(chain: LocalChain, name: string): Promise<LocalNetwork> {
    const token = await chain.deployToken();
    print(
      `deployed the test 0xBTC token at ${token}${count === 1 ? "" : ` on ${name} (chain id ${chain.chainId})`}; funding anvil accounts 1-9…`,
    );
    for (const account of ANVIL_ACCOUNTS.slice(1)) {
      await chain.mint(token, account, FAUCET_TOKENS * unit);
    }
    const displayName = count === 1 ? config.chain.name : standInName(name);
    return { name, displayName, chain, token, fork: false };
  }

  const wanted = options.chainPort ?? 8545;
  const chains: LocalChain[] = [];
  const stopChains = () => Promise.all(chains.map((chain) => chain.stop()));
  let networks: LocalNetwork[];
  try {
    const first = await startChain(wanted, { fork, chainId: config.chain.chainId });
    chains.push(first);
    const names = devNetworkNames(count, fork ? first.chainId : undefined);
    networks = [
      fork
        ? await setUpFork(first, names[0] as string)
        : await setUpPlain(first, names[0] as string),
    ];
    if (count > 1) {
      const chainId = SECOND_CHAIN_IDS.find((id) => id !== first.chainId) as number;
      const second = await startChain(wanted === 0 ? 0 : first.port + 1, { chainId });
      chains.push(second);
      networks.push(await setUpPlain(second, names[1] as string));
    }
    for (const network of networks) await network.chain.startMining(1);
  } catch (error) {
    await stopChains();
    throw error;
  }

  // A fresh chain every run, so a fresh database too: remove the database
  // file and its WAL files, nothing else.
  const dbPath = resolve(sqlitePathOf(config, "dev"));
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${dbPath}${suffix}`, { force: true });
  mkdirSync(dirname(dbPath), { recursive: true });
  mkdirSync(STATE_DIR, { recursive: true });
  try {
    config = devConfig(config, options.config, networks, dbPath);
  } catch (error) {
    await stopChains();
    exitOnError(error);
  }

  const logger = createLogger({
    level: config.log.level,
    destination: pretty({ colorize: process.stdout.isTTY, ignore: "pid,hostname,service" }),
  });
  const receiver = await startDemoReceiver(print);
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon({ config, logger });
  } catch (error) {
    receiver.close();
    await stopChains();
    exitOnError(error);
  }
  const state: DevState = {
    publicUrl: daemon.publicUrl,
    privateUrl: daemon.privateUrl,
    decimals: config.chain.decimals,
    networks: networks.map((network) => ({
      name: network.name,
      rpcUrl: network.chain.rpcUrl,
      chainId: network.chain.chainId,
      token: network.token,
    })),
  };
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));

  const body = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "start_payment",
    params: { amount: "0.29", data: { order_id: "444" }, postback_url: receiver.url },
  });
  const urls = `  private JSON-RPC (shop server):  ${daemon.privateUrl}/
  public status (browsers):        ${daemon.publicUrl}/<id>/status.json
  checkout page (shoppers):        ${daemon.publicUrl}/<id>`;
  const confirmations = config.chain.confirmations;
  if (networks.length === 1) {
    print(`
0xbtcpay is running on a local chain (chain id ${config.chain.chainId}, ${confirmations} confirmations).

${urls}
  anvil RPC:                       ${chains[0]?.rpcUrl}
  demo shop postback receiver:     ${receiver.url}

1. Create a payment:
   curl -s -X POST -H 'Content-Type: application/json' -d '${body}' ${daemon.privateUrl}/

2. Open its checkout page (the result's checkout_url) in a browser:
   ${daemon.publicUrl}/<id>

3. Pay it from a funded anvil account (in another terminal):
   npx 0xbtcpay dev pay <id>

4. Watch the page go waiting -> payment detected -> paid, and the postback arrive here:
   curl -s ${daemon.publicUrl}/<id>/status.json

Two networks, one deposit address (a payment paid on either, or part on each):
   npx 0xbtcpay dev --networks 2 (or npm run start:networks)

Ctrl-C stops everything.`);
  } else {
    const width = Math.max(...networks.map((network) => network.name.length));
    const lines = networks
      .map(
        (network) =>
          `  ${`${network.name}:`.padEnd(width + 1)}  ${network.displayName}, chain id ${network.chain.chainId}, ${confirmations} confirmations, anvil RPC ${network.chain.rpcUrl}`,
      )
      .join("\n");
    const [one, two] = networks.map((network) => network.name);
    print(`
0xbtcpay is running on ${networks.length} local chains, one deposit address on both:
${lines}

${urls}
  demo shop postback receiver:     ${receiver.url}

1. Create a payment (it accepts ${networks.map((network) => network.name).join(" and ")}; "networks": ["${two}"] restricts it):
   curl -s -X POST -H 'Content-Type: application/json' -d '${body}' ${daemon.privateUrl}/

2. Open its checkout page (the result's checkout_url) in a browser, and switch networks above the QR code:
   ${daemon.publicUrl}/<id>

3. Pay it on either network, or part on each, from a funded anvil account (in another terminal):
   npx 0xbtcpay dev pay <id> --network ${two}
   npx 0xbtcpay dev pay <id> --network ${one} --amount 0.1

4. Watch the page go waiting -> payment detected -> paid, and the postback arrive here:
   curl -s ${daemon.publicUrl}/<id>/status.json

Ctrl-C stops everything.`);
  }

  onSignals(async () => {
    await daemon.stop();
    receiver.close();
    await stopChains();
    rmSync(STATE_FILE, { force: true });
  });
  daemon.done.catch(async () => {
    await stopChains();
    process.exit(1);
  });
}

async function runPay(id: string, options: { amount?: string; from: number; network?: string }) {
  let state: DevState;
  try {
    state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as DevState;
    if (!Array.isArray(state.networks)) throw new Error("an older dev daemon's state");
  } catch {
    exitOnError(
      new Error(`no running dev daemon found (${STATE_FILE}); start one with: npm start`),
    );
  }
  const response = await fetch(`${state.publicUrl}/${encodeURIComponent(id)}/status.json`).catch(
    (error) => exitOnError(error),
  );
  if (response.status === 404) exitOnError(new Error(`no payment with id ${id}`));
  const status = (await response.json()) as {
    address: Hex;
    amount: string;
    paid_amount: string;
    /** With several networks: the ones the payment accepts. */
    networks?: string[];
  };
  const names = state.networks.map((network) => network.name);
  // By default, the first network the payment accepts.
  const wantedName = options.network ?? status.networks?.[0] ?? names[0];
  const network = state.networks.find((each) => each.name === wantedName);
  if (!network) {
    exitOnError(
      new Error(
        `the dev daemon has no network ${wantedName}: it runs ${names.join(" and ")}${names.length === 1 ? " (start it with --networks 2 for two)" : ""}`,
      ),
    );
  }
  let value: bigint;
  if (options.amount !== undefined) {
    const parsed = parseAmount(options.amount, { decimals: state.decimals });
    if (!parsed.ok) exitOnError(new Error(`invalid --amount ${options.amount}`));
    value = parsed.value;
  } else {
    const due = (parseAmount(status.amount, { decimals: state.decimals }) as { value: bigint })
      .value;
    const paid = parseAmount(status.paid_amount, { decimals: state.decimals });
    value = due - (paid.ok ? paid.value : 0n);
    if (value <= 0n) exitOnError(new Error(`payment ${id} has already received its amount`));
  }
  const wallet = createWalletClient({
    chain: defineChain({ ...foundry, id: network.chainId }),
    transport: http(network.rpcUrl),
  });
  const from = ANVIL_ACCOUNTS[options.from] as Hex;
  const hash = await wallet.writeContract({
    address: network.token,
    abi: testTokenAbi,
    functionName: "transfer",
    args: [status.address, value],
    account: from,
  });
  const on = names.length === 1 ? "" : ` on ${network.name} (chain id ${network.chainId})`;
  const wrong =
    status.networks !== undefined && !status.networks.includes(network.name)
      ? `note: payment ${id} accepts only ${status.networks.join(" and ")}: these funds are recorded as wrong_network_amount and never counted\n`
      : "";
  process.stdout.write(
    `sent ${options.amount ?? "the amount due"} 0xBTC (${value} base units) from ${from} to ${status.address}${on}\n${wrong}tx ${hash}\nwatch: ${state.publicUrl}/${id} (or curl -s ${state.publicUrl}/${id}/status.json)\n`,
  );
}

/** A URL for printing: no credentials, no path or query (provider API keys live there). */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : "/…"}`;
  } catch {
    return "(the fork URL)";
  }
}

function tokenAddress(value: string): Hex {
  if (!isAddress(value, { strict: false })) {
    throw new InvalidArgumentError("expected a 0x-prefixed 20-byte address");
  }
  return value as Hex;
}

function blockNumber(value: string): number {
  if (!/^[0-9]{1,12}$/.test(value)) throw new InvalidArgumentError("expected a block number");
  return Number(value);
}

function forkUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === "http:" || url.protocol === "https:") return value;
  } catch {}
  throw new InvalidArgumentError("expected an http(s) RPC URL");
}

function networkCount(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > MAX_DEV_NETWORKS) {
    throw new InvalidArgumentError(
      `expected 1 or ${MAX_DEV_NETWORKS} (local chains standing for Ethereum and Polygon)`,
    );
  }
  return Number(value);
}

function networkName(value: string): string {
  if (!/^[a-z][a-z0-9_]{0,31}$/.test(value)) {
    throw new InvalidArgumentError('expected a network name such as "ethereum" or "polygon"');
  }
  return value;
}

function accountIndex(value: string): number {
  if (!/^[1-9]$/.test(value))
    throw new InvalidArgumentError("expected an anvil account from 1 to 9");
  return Number(value);
}

export function devCommand(): Command {
  const dev = new Command("dev")
    .description(
      "Run the daemon on an embedded local chain (anvil) with a test 0xBTC token: no node or account needed.",
    )
    .option("-c, --config <file>", "base config (chain RPC and token are replaced)", DEV_CONFIG)
    .option(
      "--chain-port <port>",
      "anvil port (default 8545, or a free one if it is taken; 0: a free one); a second chain takes the next port",
      (v) => Number(v),
    )
    .option(
      "--networks <n>",
      "local chains to watch: 1, or 2 (Ethereum and Polygon stand-ins, chain ids 31337 and 31338, one deposit address on both)",
      networkCount,
      1,
    )
    .option(
      "--fork-url <url>",
      "fork a real network instead of a blank chain: its RPC URL (the daemon watches the real token)",
      forkUrl,
    )
    .option(
      "--fork-block <n>",
      "with --fork-url: fork at this block (default: the head)",
      blockNumber,
    )
    .option(
      "--token <address>",
      `with --fork-url: the token to watch (default: 0xBitcoin on mainnet, ${MAINNET_0XBTC})`,
      tokenAddress,
    )
    .addHelpText(
      "after",
      `
Fork a real network (test with real contracts, pay with fake balances):
  npx 0xbtcpay dev --fork-url https://ethereum-rpc.publicnode.com
  npx 0xbtcpay dev --fork-url "$MAINNET_RPC_URL" --fork-block 21000000
anvil forks it; the daemon watches the real token at its real address from
the fork block on; anvil's accounts 1-9 get 1,000,000 tokens each through
anvil_dealERC20, and \`dev pay\` works as on the plain dev chain.

Two networks, one deposit address (pay on either, or part on each):
  npx 0xbtcpay dev --networks 2
  npx 0xbtcpay dev pay <id> --network polygon
With --fork-url, --networks 2 adds a blank local chain beside the fork.`,
    )
    .action(async (options: DevOptions) => {
      if ((options.forkBlock !== undefined || options.token !== undefined) && !options.forkUrl) {
        exitOnError(new Error("--fork-block and --token need --fork-url"));
      }
      await runDev(options).catch((error) => exitOnError(error));
    });
  dev
    .command("pay")
    .description("Pay a payment of the running dev daemon from a funded anvil account.")
    .argument("<id>", "payment id (16 hex characters)")
    .option("--amount <amount>", "0xBTC to send (default: what is still due)")
    .option("--from <n>", "anvil account 1-9 to pay from", accountIndex, 1)
    .option(
      "--network <name>",
      "with dev --networks 2: the network to pay on (default: the first the payment accepts)",
      networkName,
    )
    .action(async (id: string, options: { amount?: string; from: number; network?: string }) => {
      await runPay(id, options).catch((error) => exitOnError(error));
    });
  return dev;
}
