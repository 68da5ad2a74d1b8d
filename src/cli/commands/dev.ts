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
import { ANVIL_ACCOUNTS, anvilBinaryPath, startLocalChain } from "../../chain/anvil.ts";
import { defaultChainName, loadConfig } from "../../config/index.ts";
import { startDaemon } from "../../daemon.ts";
import { createLogger } from "../../internal/logger.ts";
import { parseAmount } from "../../payments/amount.ts";
import { exitOnError, onSignals } from "../run.ts";

const DEV_CONFIG = fileURLToPath(new URL("../../../config/dev.json", import.meta.url));
const STATE_DIR = resolve(".0xbtcpay-dev");
const STATE_FILE = resolve(STATE_DIR, "state.json");

type DevState = {
  rpcUrl: string;
  chainId: number;
  token: Hex;
  publicUrl: string;
  privateUrl: string;
  decimals: number;
};

/** Tokens each of anvil's payer accounts (1..9) gets on start. */
const FAUCET_TOKENS = 1_000_000n;

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
};

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
        `${options.config} has networks: dev runs one local chain in place of the config's single chain section; give it a config with chain`,
      ),
    );
  }
  try {
    anvilBinaryPath();
  } catch (error) {
    exitOnError(error);
  }
  const fork = options.forkUrl
    ? { url: options.forkUrl, blockNumber: options.forkBlock }
    : undefined;
  print(
    fork
      ? `0xbtcpay dev: starting anvil as a fork of ${redactUrl(fork.url)}${fork.blockNumber === undefined ? "" : ` at block ${fork.blockNumber}`} (a block every second)…`
      : "0xbtcpay dev: starting a local anvil chain (a block every second)…",
  );
  const wanted = options.chainPort ?? 8545;
  // A taken port makes anvil exit at once; then anvil picks a free one itself.
  const chain = await startLocalChain({ port: wanted, blockTime: 1, fork }).catch(() =>
    startLocalChain({ blockTime: 1, fork }),
  );
  const unit = 10n ** BigInt(config.chain.decimals);
  let token: Hex;
  let startBlock: number | undefined;
  if (fork) {
    // The real token at its real address (or --token), checked before anything is funded.
    token = (options.token ?? MAINNET_0XBTC).toLowerCase() as Hex;
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
    startBlock = Number(await chain.client.getBlockNumber());
    print(`watching the token at ${token} from block ${startBlock}; funding anvil accounts 1-9…`);
    for (const account of ANVIL_ACCOUNTS.slice(1)) {
      await chain.deal(token, account, FAUCET_TOKENS * unit);
    }
  } else {
    token = await chain.deployToken();
    print(`deployed the test 0xBTC token at ${token}; funding anvil accounts 1-9…`);
    for (const account of ANVIL_ACCOUNTS.slice(1)) {
      await chain.mint(token, account, FAUCET_TOKENS * unit);
    }
  }

  // A fresh chain every run, so a fresh database too: remove the database
  // file and its WAL files, nothing else.
  const dbPath = resolve(config.database.path);
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${dbPath}${suffix}`, { force: true });
  mkdirSync(dirname(dbPath), { recursive: true });
  mkdirSync(STATE_DIR, { recursive: true });
  // A fork's transactions exist only locally: no explorer link for them.
  const { explorerUrl: _explorer, ...chainConfig } = config.chain;
  config = {
    ...config,
    chain: {
      ...(fork ? chainConfig : config.chain),
      ...(fork ? { name: `${defaultChainName(chain.chainId)} (local fork)` } : {}),
      rpcUrl: chain.rpcUrl,
      token,
      chainId: chain.chainId,
      ...(startBlock === undefined ? {} : { startBlock }),
    },
    database: { path: dbPath },
  };

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
    await chain.stop();
    exitOnError(error);
  }
  const state: DevState = {
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    token,
    publicUrl: daemon.publicUrl,
    privateUrl: daemon.privateUrl,
    decimals: config.chain.decimals,
  };
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));

  const body = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "start_payment",
    params: { amount: "0.29", data: { order_id: "444" }, postback_url: receiver.url },
  });
  print(`
0xbtcpay is running on a local chain (chain id ${config.chain.chainId}, ${config.chain.confirmations} confirmations).

  private JSON-RPC (shop server):  ${daemon.privateUrl}/
  public status (browsers):        ${daemon.publicUrl}/<id>/status.json
  checkout page (shoppers):        ${daemon.publicUrl}/<id>
  anvil RPC:                       ${chain.rpcUrl}
  demo shop postback receiver:     ${receiver.url}

1. Create a payment:
   curl -s -X POST -H 'Content-Type: application/json' -d '${body}' ${daemon.privateUrl}/

2. Open its checkout page (the result's checkout_url) in a browser:
   ${daemon.publicUrl}/<id>

3. Pay it from a funded anvil account (in another terminal):
   npx 0xbtcpay dev pay <id>

4. Watch the page go waiting -> payment detected -> paid, and the postback arrive here:
   curl -s ${daemon.publicUrl}/<id>/status.json

Ctrl-C stops everything.`);

  onSignals(async () => {
    await daemon.stop();
    receiver.close();
    await chain.stop();
    rmSync(STATE_FILE, { force: true });
  });
  daemon.done.catch(async () => {
    await chain.stop();
    process.exit(1);
  });
}

async function runPay(id: string, options: { amount?: string; from: number }) {
  let state: DevState;
  try {
    state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as DevState;
  } catch {
    exitOnError(
      new Error(`no running dev daemon found (${STATE_FILE}); start one with: npm start`),
    );
  }
  const response = await fetch(`${state.publicUrl}/${encodeURIComponent(id)}/status.json`).catch(
    (error) => exitOnError(error),
  );
  if (response.status === 404) exitOnError(new Error(`no payment with id ${id}`));
  const status = (await response.json()) as { address: Hex; amount: string; paid_amount: string };
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
    chain: defineChain({ ...foundry, id: state.chainId }),
    transport: http(state.rpcUrl),
  });
  const from = ANVIL_ACCOUNTS[options.from] as Hex;
  const hash = await wallet.writeContract({
    address: state.token,
    abi: testTokenAbi,
    functionName: "transfer",
    args: [status.address, value],
    account: from,
  });
  process.stdout.write(
    `sent ${options.amount ?? "the amount due"} 0xBTC (${value} base units) from ${from} to ${status.address}\ntx ${hash}\nwatch: ${state.publicUrl}/${id} (or curl -s ${state.publicUrl}/${id}/status.json)\n`,
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
      "anvil port (default 8545, or a free one if it is taken; 0: a free one)",
      (v) => Number(v),
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
anvil_dealERC20, and \`dev pay\` works as on the plain dev chain.`,
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
    .action(async (id: string, options: { amount?: string; from: number }) => {
      await runPay(id, options).catch((error) => exitOnError(error));
    });
  return dev;
}
