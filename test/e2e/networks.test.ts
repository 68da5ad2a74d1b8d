/**
 * Several networks, one deposit address (issue 13): the config, the
 * migration and the rule on their own, then two real anvil chains with
 * different chain ids, each with the test token (at different addresses),
 * watched by in-process daemons: a payment paid half on each network, a
 * reorg on one network, one network's RPC down, a payment restricted to one
 * network receiving funds on another, a token with the wrong decimals.
 */
import { join } from "node:path";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import Database from "better-sqlite3";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, ANVIL_MNEMONIC, DEV_XPUB } from "../../src/chain/anvil.ts";
import {
  type ConfigInput,
  loadConfig,
  networksOf,
  parseConfig,
  rpcUrlEnvOf,
} from "../../src/config/index.ts";
import { type Daemon, startDaemon } from "../../src/daemon.ts";
import { ConfigError } from "../../src/internal/errors.ts";
import { evaluateTransfers, type TransferForEvaluation } from "../../src/payments/evaluate.ts";
import { decide } from "../../src/payments/lifecycle.ts";
import { listMigrations, migrate } from "../../src/store/sqlite/index.ts";
import {
  anvilCall,
  dbOf,
  LOOPBACK_TARGETS,
  offlineResolver,
  type ReceivedRequest,
  rpc,
  STATUS_KEYS,
  silentLogger,
  startPayment,
  startReceiver,
  startTestChain,
  status,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prom-text.ts";

const PAYER = ANVIL_ACCOUNTS[1] as Hex;
const ETHEREUM_ID = 31337;
const POLYGON_ID = 31338;

/** The xpub of account `account` of anvil's mnemonic: each daemon its own deposit addresses. */
function xpubOf(account: number): string {
  return HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC)).derive(`m/44'/60'/${account}'/0`)
    .publicExtendedKey;
}

const SECRET_FREE_BASE = {
  wallet: { xpub: DEV_XPUB },
  database: { path: "/tmp/x.sqlite" },
};

function issuesOf(raw: unknown, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(raw, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

describe("config: networks", () => {
  const two = [
    { name: "ethereum", rpcUrl: "https://eth.example/rpc", chainId: 1, confirmations: 12 },
    { name: "polygon", rpcUrl: "https://polygon.example/rpc", chainId: 137 },
  ];

  test("each network with today's chain keys, the known chains' 0xBTC contract and names by default; chain mirrors the first", async () => {
    const config = parseConfig({ ...SECRET_FREE_BASE, networks: two });
    expect(networksOf(config)).toEqual([
      {
        key: "networks.0",
        name: "ethereum",
        displayName: "Ethereum",
        rpcUrl: "https://eth.example/rpc",
        chainId: 1,
        token: "0xb6ed7644c69416d67b522e20bc294a9a9b405b31",
        decimals: 8,
        confirmations: 12,
        pollIntervalMs: 2000,
        maxBlockRange: 2000,
        finalityDepth: 64,
        symbol: "0xBTC",
        explorerUrl: "https://etherscan.io",
      },
      {
        key: "networks.1",
        name: "polygon",
        displayName: "Polygon",
        rpcUrl: "https://polygon.example/rpc",
        chainId: 137,
        token: "0x71b821aa52a49f32eed535fca6eb5aa130085978",
        decimals: 8,
        confirmations: 3,
        pollIntervalMs: 2000,
        maxBlockRange: 2000,
        finalityDepth: 64,
        symbol: "0xBTC",
        explorerUrl: "https://polygonscan.com",
      },
    ]);
    expect(config.chain).toMatchObject({ chainId: 1, name: "Ethereum", confirmations: 12 });
  });

  test("the single chain section is one network named ethereum, and the config has no networks", async () => {
    const config = parseConfig({
      ...SECRET_FREE_BASE,
      chain: { rpcUrl: "https://rpc.example", chainId: 31337 },
    });
    expect(config.networks).toBeUndefined();
    expect(networksOf(config)).toMatchObject([
      { name: "ethereum", key: "chain", chainId: 31337, displayName: "Local chain (anvil)" },
    ]);
  });

  test("both sections, neither, duplicate names and chain ids, other decimals and an unknown chain without a token are refused by key", async () => {
    expect(
      issuesOf({
        ...SECRET_FREE_BASE,
        chain: { rpcUrl: "https://rpc.example", chainId: 1 },
        networks: two,
      }),
    ).toEqual([
      'networks: give either `chain` (one network) or `networks` (several), not both: move the chain section into networks as an entry named "ethereum"',
    ]);
    expect(issuesOf(SECRET_FREE_BASE)).toEqual(["chain: is required (or `networks`)"]);
    expect(
      issuesOf({
        ...SECRET_FREE_BASE,
        networks: [
          ...two,
          {
            name: "polygon",
            rpcUrl: "https://a.example",
            chainId: 10,
            token: `0x${"1".repeat(40)}`,
          },
          { name: "mumbai", rpcUrl: "https://b.example", chainId: 137, decimals: 18 },
          { name: "Base", rpcUrl: "https://c.example", chainId: 8453 },
        ],
      }),
    ).toEqual([
      'networks.4.name: expected a lowercase name such as "ethereum" or "polygon" (a letter, then letters, digits or underscores; at most 32)',
      "networks.4.token: is required: 0xbtcpay knows no 0xBTC contract on chain 8453",
      'networks.2.name: duplicate network name "polygon" (also networks.1)',
      'networks.3.chainId: chain id 137 is also networks.1\'s ("polygon"): each network once',
      "networks.3.decimals: is 18, but a payment's amount is in 0xBTC, which has 8 decimals on every network: every network's token must have 8",
    ]);
    expect(issuesOf({ ...SECRET_FREE_BASE, networks: [] })).toEqual([
      "networks: Too small: expected array to have >=1 items",
    ]);
  });

  test("OXBTCPAY_RPC_URL_<NAME> gives a network its RPC URL; a variable for no network, or the single-chain one with networks, is refused", async () => {
    const config = parseConfig(
      { ...SECRET_FREE_BASE, networks: [two[0], { name: "polygon", chainId: 137 }] },
      { OXBTCPAY_RPC_URL_POLYGON: "https://secret.example/key", OXBTCPAY_RPC_URL_ETHEREUM: "" },
    );
    expect(rpcUrlEnvOf("polygon")).toBe("OXBTCPAY_RPC_URL_POLYGON");
    expect(networksOf(config).map((n) => n.rpcUrl)).toEqual([
      "https://eth.example/rpc",
      "https://secret.example/key",
    ]);
    expect(
      issuesOf(
        { ...SECRET_FREE_BASE, networks: two },
        { OXBTCPAY_RPC_URL: "https://x.example", OXBTCPAY_RPC_URL_POLGON: "https://y.example" },
      ),
    ).toEqual([
      "OXBTCPAY_RPC_URL: it replaces chain.rpcUrl, and this config has networks instead: set OXBTCPAY_RPC_URL_ETHEREUM, OXBTCPAY_RPC_URL_POLYGON (one per network)",
      'OXBTCPAY_RPC_URL_POLGON: no network named "polgon" in networks',
    ]);
    expect(
      issuesOf(
        { ...SECRET_FREE_BASE, chain: { rpcUrl: "https://rpc.example", chainId: 1 } },
        { OXBTCPAY_RPC_URL_POLYGON: "https://y.example" },
      ),
    ).toEqual([
      "OXBTCPAY_RPC_URL_POLYGON: it names a network, and this config has the single chain section: set OXBTCPAY_RPC_URL",
    ]);
  });

  test("config/example-networks.json validates: Ethereum and Polygon with their 0xBTC contracts", async () => {
    const config = loadConfig({ path: "config/example-networks.json" });
    expect(
      networksOf(config).map(({ name, chainId, token, confirmations }) => ({
        name,
        chainId,
        token,
        confirmations,
      })),
    ).toEqual([
      {
        name: "ethereum",
        chainId: 1,
        token: "0xb6ed7644c69416d67b522e20bc294a9a9b405b31",
        confirmations: 12,
      },
      {
        name: "polygon",
        chainId: 137,
        token: "0x71b821aa52a49f32eed535fca6eb5aa130085978",
        confirmations: 64,
      },
    ]);
  });

  test("payment.wrong_network may be a default event only with networks", async () => {
    const events = ["payment.paid", "payment.wrong_network"];
    expect(
      parseConfig({ ...SECRET_FREE_BASE, networks: two, postbacks: { events } }).postbacks.events,
    ).toEqual(events);
    expect(
      issuesOf({
        ...SECRET_FREE_BASE,
        chain: { rpcUrl: "https://rpc.example", chainId: 1 },
        postbacks: { events },
      }),
    ).toEqual([
      "postbacks.events.1: payment.wrong_network is only raised with `networks` (a single chain has no wrong network)",
    ]);
  });
});

describe("migration 0007", () => {
  test("the single chain's cursor, blocks, transfers and paid payment become network ethereum's, unchanged otherwise", async () => {
    const db = new Database(":memory:");
    migrate(
      db,
      listMigrations().filter((m) => m.version <= 6),
    );
    db.exec(`INSERT INTO chain_cursor VALUES (1, 31337, '0xt', 40, '0xh40', 45, 7);
      INSERT INTO blocks VALUES (40, '0xh40', '0xh39', 1700000000);
      INSERT INTO payments (id, amount, derivation_index, address, created_at, expires_at, seen_at, paid_at, tx_hash, block_number, paid_amount, status)
        VALUES ('0000000000000001', '5', 0, '0xa', 0, 9, 1, 2, '0xtx', 40, '5', 'paid'),
               ('0000000000000002', '5', 1, '0xb', 0, 9, NULL, NULL, NULL, NULL, '0', 'waiting');
      INSERT INTO transfers (tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id, recorded_at, block_timestamp)
        VALUES ('0xtx', 0, 40, '0xh40', '0xf', '0xa', '5', '0000000000000001', 3, 1700000000);`);
    migrate(db);
    expect(db.prepare("SELECT * FROM chain_cursor").all()).toEqual([
      {
        id: 1,
        network: "ethereum",
        chain_id: 31337,
        token: "0xt",
        block_number: 40,
        block_hash: "0xh40",
        head_number: 45,
        updated_at: 7,
      },
    ]);
    expect(db.prepare("SELECT network, number, hash FROM blocks").all()).toEqual([
      { network: "ethereum", number: 40, hash: "0xh40" },
    ]);
    expect(db.prepare("SELECT network, tx_hash, value FROM transfers").all()).toEqual([
      { network: "ethereum", tx_hash: "0xtx", value: "5" },
    ]);
    expect(
      db
        .prepare(
          "SELECT id, networks, network, block_network, wrong_network_amount FROM payments ORDER BY id",
        )
        .all(),
    ).toEqual([
      {
        id: "0000000000000001",
        networks: null,
        network: "ethereum",
        block_network: "ethereum",
        wrong_network_amount: "0",
      },
      {
        id: "0000000000000002",
        networks: null,
        network: null,
        block_network: null,
        wrong_network_amount: "0",
      },
    ]);
    // The same transaction hash on another network is another transfer.
    const insert = db.prepare(
      "INSERT OR IGNORE INTO transfers (network, tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id, recorded_at) VALUES (?, '0xtx', 0, 1, '0xb', '0xf', '0xa', '1', '0000000000000001', 0)",
    );
    expect(insert.run("polygon").changes).toBe(1);
    expect(insert.run("ethereum").changes).toBe(0);
    db.close();
  });
});

describe("the rule across networks", () => {
  const transfer = (
    network: string,
    txHash: string,
    blockNumber: number,
    value: bigint,
    blockTimestamp: number,
  ): TransferForEvaluation => ({
    network,
    txHash,
    blockNumber,
    logIndex: 0,
    value,
    blockTimestamp,
  });
  const confirmations: Record<string, number> = { ethereum: 3, polygon: 2 };
  const rules = (heads: Record<string, number>, accepts = (_: string) => true) => ({
    heads: new Map(Object.entries(heads)),
    requiredConfirmations: (network: string) => confirmations[network] ?? 99,
    accepts,
  });

  test("paid when the confirmed sum reaches the amount, each transfer confirmed on its own network; the completing transfer is the one that got the sum there in arrival order", async () => {
    // Polygon's half arrives first (block time), Ethereum's second.
    const transfers = [
      transfer("ethereum", "0xe", 100, 5n, 1_000_020),
      transfer("polygon", "0xp", 5_000, 5n, 1_000_010),
    ];
    const evaluate = (heads: Record<string, number>) =>
      evaluateTransfers({ amount: 10n, transfers, rules: rules(heads) });
    // Ethereum confirmed (3), Polygon not (1 of 2): received in full, not paid.
    expect(evaluate({ ethereum: 102, polygon: 5_000 })).toMatchObject({
      paidAmount: 10n,
      paid: false,
      completing: { txHash: "0xe" },
      confirmations: 3,
    });
    const paid = evaluate({ ethereum: 102, polygon: 5_001 });
    expect(paid).toMatchObject({ paid: true, paidBy: { txHash: "0xe", network: "ethereum" } });
    // Without the Ethereum half's confirmations, Polygon's alone is not enough.
    expect(evaluate({ ethereum: 101, polygon: 9_999 }).paid).toBe(false);
  });

  test("a later transfer confirmed sooner completes the payment when the earlier one is still confirming", async () => {
    const transfers = [
      transfer("ethereum", "0xe1", 100, 4n, 1_000_000),
      transfer("polygon", "0xp", 5_000, 4n, 1_000_010),
      transfer("ethereum", "0xe2", 101, 6n, 1_000_020),
    ];
    const result = evaluateTransfers({
      amount: 10n,
      transfers,
      // Ethereum's two are confirmed, Polygon's is not.
      rules: rules({ ethereum: 103, polygon: 5_000 }),
    });
    expect(result).toMatchObject({
      paidAmount: 14n,
      completing: { txHash: "0xe2" },
      paid: true,
      paidBy: { txHash: "0xe2" },
    });
  });

  test("funds on a network the payment does not accept are added up apart and never counted; late is by each network's own block time", async () => {
    const result = evaluateTransfers({
      amount: 10n,
      expiresAt: 1_000_015_000,
      transfers: [
        transfer("ethereum", "0xe", 100, 10n, 1_000_000),
        transfer("polygon", "0xp1", 5_000, 6n, 1_000_010),
        transfer("polygon", "0xp2", 5_001, 4n, 1_000_020),
      ],
      rules: rules({ ethereum: 200, polygon: 6_000 }, (network) => network === "polygon"),
    });
    expect(result).toMatchObject({
      wrongNetworkAmount: 10n,
      counted: 2,
      paidAmount: 10n,
      lateAmount: 4n,
      paid: false,
      paidLate: true,
      latePaidBy: { txHash: "0xp2" },
    });
  });

  test("a transition that adds wrong-network funds raises payment.wrong_network once; the status stays waiting", async () => {
    const payment: Parameters<typeof decide>[0]["payment"] = {
      amount: "10",
      expires_at: 2_000_000_000_000,
      cancelled_at: null,
      status: "waiting",
      seen_at: null,
      paid_at: null,
      tx_hash: null,
      block_number: null,
      paid_late_at: null,
      reorged_after_paid_at: null,
      networks: '["polygon"]',
      network: null,
      wrong_network_amount: "0",
    };
    const networks = {
      heads: new Map([
        ["ethereum", 200],
        ["polygon", 6_000],
      ]),
      requiredConfirmations: (network: string) => confirmations[network] ?? 99,
    };
    const wrong = [transfer("ethereum", "0xe", 100, 10n, 1_000_000)];
    const first = decide({ payment, transfers: wrong, networks, now: 1 });
    expect(first.events).toEqual(["payment.wrong_network"]);
    expect(first.next).toMatchObject({
      status: "waiting",
      seen_at: null,
      paid_amount: "0",
      wrong_network_amount: "10",
    });
    const again = decide({
      payment: { ...payment, ...first.next },
      transfers: wrong,
      networks,
      now: 2,
    });
    expect(again.events).toEqual([]);
    const paid = decide({
      payment: { ...payment, ...first.next },
      transfers: [...wrong, transfer("polygon", "0xp", 5_000, 10n, 1_000_010)],
      networks,
      now: 3,
    });
    expect(paid.events).toEqual(["payment.seen", "payment.paid"]);
    expect(paid.next).toMatchObject({
      status: "paid",
      tx_hash: "0xp",
      network: "polygon",
      block_network: "polygon",
      paid_amount: "10",
      wrong_network_amount: "10",
    });
  });
});

describe("two chains, one address", () => {
  let eth: TestChain;
  let poly: TestChain;
  const dir = tempDir();
  const cleanups: Array<() => unknown> = [];
  let shop: Awaited<ReturnType<typeof startReceiver>>;
  let legacyShop: Awaited<ReturnType<typeof startReceiver>>;
  let daemon: Daemon;

  /** A config of two networks (or as given) with the tests' ports, on a database of its own. */
  function networksConfig(
    name: string,
    networks: NonNullable<ConfigInput["networks"]>,
    xpub: string,
    extra: Partial<ConfigInput> = {},
  ) {
    return parseConfig({
      networks,
      wallet: { xpub },
      private: { host: "127.0.0.1", port: 0 },
      public: { host: "127.0.0.1", port: 0, rateLimit: { windowMs: 60_000, max: 0 } },
      postbacks: { allowTargets: LOOPBACK_TARGETS },
      ops: { host: "127.0.0.1", port: 0 },
      database: { path: join(dir.path, `${name}.sqlite`) },
      log: { level: "silent" },
      ...extra,
    });
  }
  const ethereum = () => ({
    name: "ethereum",
    chainId: ETHEREUM_ID,
    rpcUrl: eth.rpcUrl,
    token: eth.token,
    confirmations: 3,
    pollIntervalMs: 50,
  });
  const polygon = () => ({
    name: "polygon",
    chainId: POLYGON_ID,
    rpcUrl: poly.rpcUrl,
    token: poly.token,
    confirmations: 2,
    pollIntervalMs: 50,
  });

  async function start(config: ReturnType<typeof parseConfig>): Promise<Daemon> {
    const started = await startDaemon({ config, logger: silentLogger, resolve: offlineResolver });
    cleanups.push(() => started.stop());
    return started;
  }

  beforeAll(async () => {
    [eth, poly] = await Promise.all([
      startTestChain({ chainId: ETHEREUM_ID }),
      startTestChain({ chainId: POLYGON_ID }),
    ]);
    // Polygon's token at another address than Ethereum's: a mix-up would show.
    poly = { ...poly, token: await poly.deployToken() };
    await Promise.all([
      eth.mint(eth.token, PAYER, tokens(1_000)),
      poly.mint(poly.token, PAYER, tokens(1_000)),
    ]);
    [shop, legacyShop] = await Promise.all([startReceiver(), startReceiver()]);
    daemon = await start(
      networksConfig("two", [ethereum(), polygon()], DEV_XPUB, {
        postbacks: { allowTargets: LOOPBACK_TARGETS, retrySchedule: ["100ms"] },
      }),
    );
  });
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await Promise.all([shop?.close(), legacyShop?.close(), eth?.stop(), poly?.stop()]);
    dir.cleanup();
  });

  /** Pays in a new block of `chain`, at block time `at` (UNIX s) if given; the tx hash. */
  async function pay(chain: TestChain, to: string, value: bigint, at?: number): Promise<Hex> {
    if (at !== undefined) await anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [at]);
    const hash = await chain.submitTransfer({
      token: chain.token,
      from: PAYER,
      to: to as Hex,
      value,
    });
    await chain.mine(1);
    await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    return hash;
  }
  const latestTime = async (chain: TestChain) =>
    Number((await chain.client.getBlock({ blockTag: "latest" })).timestamp);
  const viewOf = async (on: Daemon, id: string) => (await status(on.publicUrl, id)).body;
  const until = <T>(check: () => Promise<T | undefined | false>, what: string) =>
    waitFor(check, { what, timeoutMs: 20_000 });

  test("half paid on each network: paid once both halves are confirmed on their own networks; tx_hash and network are the completing transfer's, on every wire", async () => {
    const made = await startPayment(daemon.privateUrl, { amount: "2", postback_url: shop.url });
    expect((made as unknown as { networks: string[] }).networks).toEqual(["ethereum", "polygon"]);
    const t0 = Math.max(await latestTime(eth), await latestTime(poly)) + 1;
    const polyTx = await pay(poly, made.address, tokens(1), t0);
    const ethTx = await pay(eth, made.address, tokens(1), t0 + 5);
    await eth.mine(2);
    // Ethereum's half has its 3 confirmations, Polygon's 1 of 2: received, not paid.
    const confirming = await until(async () => {
      const view = await viewOf(daemon, made.id);
      const confirmationsOn = (network: string) =>
        view.transfers.find((t) => t.network === network)?.confirmations;
      return confirmationsOn("ethereum") === 3 && confirmationsOn("polygon") === 1 && view;
    }, "ethereum's half confirmed, polygon's seen");
    expect(confirming).toMatchObject({
      status: "seen",
      paid_amount: "2",
      tx_hash: null,
      network: null,
      networks: ["ethereum", "polygon"],
      wrong_network: false,
      wrong_network_amount: "0",
    });
    expect(confirming.transfers).toEqual([
      {
        tx_hash: ethTx,
        amount: "1",
        block_number: expect.any(Number),
        confirmations: 3,
        late: false,
        network: "ethereum",
        wrong_network: false,
      },
      {
        tx_hash: polyTx,
        amount: "1",
        block_number: expect.any(Number),
        confirmations: 1,
        late: false,
        network: "polygon",
        wrong_network: false,
      },
    ]);

    await poly.mine(1);
    const paid = await until(async () => {
      const view = await viewOf(daemon, made.id);
      return view.status === "paid" && view;
    }, "paid");
    // Polygon's half came first (block time): Ethereum's completed the sum.
    expect(paid).toMatchObject({ tx_hash: ethTx, network: "ethereum", paid_amount: "2" });
    expect(paid.confirmations).toBe(3);
    expect(paid.required_confirmations).toBe(3);
    const keys = Object.keys(paid);
    expect(keys.filter((key) => STATUS_KEYS.includes(key))).toEqual(STATUS_KEYS);
    expect(keys.slice(0, 6)).toEqual([
      "address",
      "amount",
      "seen_at",
      "paid_at",
      "tx_hash",
      "network",
    ]);

    const full = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "get_payment",
      params: { id: made.id },
    });
    expect(full.json.result).toMatchObject({ tx_hash: ethTx, network: "ethereum" });
    const delivered = await until(
      async () => shop.received.find((r) => JSON.parse(r.body).id === made.id),
      "the paid postback",
    );
    const body = JSON.parse(delivered.body);
    expect(Object.keys(body).slice(0, 5)).toEqual(["id", "data", "tx_hash", "network", "event"]);
    expect(body).toMatchObject({
      event: "payment.paid",
      tx_hash: ethTx,
      network: "ethereum",
      wrong_network: false,
      wrong_network_amount: "0",
    });
  });

  test("a reorg on one network removes its half: back to seen with the other half untouched; paid again once re-paid", async () => {
    const made = await startPayment(daemon.privateUrl, { amount: "2" });
    const t0 = Math.max(await latestTime(eth), await latestTime(poly)) + 1;
    const ethTx = await pay(eth, made.address, tokens(1), t0);
    await pay(poly, made.address, tokens(1), t0 + 1);
    const full = await until(async () => {
      const view = await viewOf(daemon, made.id);
      return view.paid_amount === "2" && view;
    }, "both halves seen");
    expect(full.status).toBe("seen");
    const ethTransfer = full.transfers.find((t) => t.network === "ethereum");
    const reorgs = (name: string) => daemon.watchers.get(name)?.stats().reorgs ?? -1;
    const ethReorgs = reorgs("ethereum");
    const polyReorgs = reorgs("polygon");

    await anvilCall(poly.rpcUrl, "anvil_reorg", [1, []]);
    const half = await until(async () => {
      const view = await viewOf(daemon, made.id);
      return view.paid_amount === "1" && view;
    }, "polygon's half rewound");
    expect(half).toMatchObject({ status: "seen", tx_hash: null });
    expect(half.transfers).toEqual([ethTransfer]);
    expect(reorgs("polygon")).toBeGreaterThan(polyReorgs);
    expect(reorgs("ethereum")).toBe(ethReorgs);
    expect(
      dbOf(daemon)
        .prepare(
          "SELECT network, count(*) AS n FROM transfers WHERE payment_id = ? GROUP BY network",
        )
        .all(made.id),
    ).toEqual([{ network: "ethereum", n: 1 }]);

    // Paid later (block time) than Ethereum's half: the new transfer completes it.
    const again = await pay(poly, made.address, tokens(1), t0 + 10);
    await Promise.all([eth.mine(2), poly.mine(1)]);
    const paid = await until(async () => {
      const view = await viewOf(daemon, made.id);
      return view.status === "paid" && view;
    }, "paid after the re-payment");
    expect(paid).toMatchObject({ tx_hash: again, network: "polygon", paid_amount: "2" });
    expect(paid.transfers.map((t) => t.tx_hash)).toEqual([ethTx, again]);
  });

  test("a payment restricted to one network: funds on another are recorded, flagged and never counted; only the opted-in shop is told", async () => {
    const optedIn = await startPayment(daemon.privateUrl, {
      amount: "1",
      networks: ["polygon"],
      postback_url: shop.url,
      postback_events: ["payment.paid", "payment.wrong_network"],
    });
    const legacy = await startPayment(daemon.privateUrl, {
      amount: "1",
      networks: ["polygon"],
      postback_url: legacyShop.url,
    });
    expect((optedIn as unknown as { networks: string[] }).networks).toEqual(["polygon"]);
    const wrongTx = await pay(eth, optedIn.address, tokens(1));
    await pay(eth, legacy.address, tokens(1));
    await eth.mine(2);

    const flagged = await until(async () => {
      const view = await viewOf(daemon, optedIn.id);
      return view.wrong_network && view;
    }, "wrong-network funds flagged");
    expect(flagged).toMatchObject({
      status: "waiting",
      seen_at: null,
      paid_amount: "0",
      networks: ["polygon"],
      wrong_network: true,
      wrong_network_amount: "1",
      transfers: [
        {
          tx_hash: wrongTx,
          amount: "1",
          network: "ethereum",
          wrong_network: true,
          confirmations: expect.any(Number),
        },
      ],
    });
    const told = await until(
      async () => shop.received.find((r: ReceivedRequest) => JSON.parse(r.body).id === optedIn.id),
      "the wrong_network postback",
    );
    expect(JSON.parse(told.body)).toMatchObject({
      event: "payment.wrong_network",
      status: "waiting",
      tx_hash: null,
      network: null,
      paid_amount: "0",
      wrong_network: true,
      wrong_network_amount: "1",
    });
    await until(
      async () => (await viewOf(daemon, legacy.id)).wrong_network_amount === "1",
      "the legacy shop's payment flagged",
    );
    expect(await daemon.payments.outbox.byPayment(legacy.id)).toEqual([]);
    expect(legacyShop.received).toEqual([]);

    const right = await pay(poly, optedIn.address, tokens(1));
    await poly.mine(1);
    const paid = await until(async () => {
      const view = await viewOf(daemon, optedIn.id);
      return view.status === "paid" && view;
    }, "paid on polygon");
    expect(paid).toMatchObject({
      tx_hash: right,
      network: "polygon",
      paid_amount: "1",
      wrong_network_amount: "1",
    });
    await until(
      async () => shop.received.filter((r) => JSON.parse(r.body).id === optedIn.id).length === 2,
      "the paid postback",
    );
    expect(
      shop.received
        .filter((r) => JSON.parse(r.body).id === optedIn.id)
        .map((r) => JSON.parse(r.body).event),
    ).toEqual(["payment.wrong_network", "payment.paid"]);
  });

  test("start_payment networks: names of watched networks only, each once, never empty", async () => {
    const call = (params: Record<string, unknown>) =>
      rpc(daemon.privateUrl, { jsonrpc: "2.0", id: 7, method: "start_payment", params });
    const reason =
      "Invalid params: invalid networks: expected a non-empty list of distinct network names from ethereum, polygon";
    for (const networks of [["solana"], [], ["polygon", "polygon"], "polygon", [1]]) {
      expect((await call({ amount: "1", networks })).json).toEqual({
        jsonrpc: "2.0",
        error: { code: -32602, message: reason },
        id: 7,
      });
    }
    const both = await call({ amount: "1", networks: ["polygon", "ethereum"] });
    expect(both.json.result.networks).toEqual(["polygon", "ethereum"]);
    expect((await viewOf(daemon, both.json.result.id)).networks).toEqual(["polygon", "ethereum"]);
  });

  test("one network's RPC down for good: payments paid on the other complete; /readyz stays 200 as degraded naming the down network, /metrics labels each", async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const down = await start(
      networksConfig("down", [ethereum(), { ...polygon(), rpcUrl: closed }], xpubOf(2)),
    );
    const made = await startPayment(down.privateUrl, { amount: "1" });
    const tx = await pay(eth, made.address, tokens(1));
    await eth.mine(2);
    const paid = await until(async () => {
      const view = await viewOf(down, made.id);
      return view.status === "paid" && view;
    }, "paid on ethereum");
    expect(paid).toMatchObject({ tx_hash: tx, network: "ethereum" });

    // Ethereum is current and the database writable: still ready (a load
    // balancer keeps the replica), and the body says which network is not.
    const readyz = await fetch(`${down.opsUrl}/readyz`);
    expect(readyz.status).toBe(200);
    const health = (await readyz.json()) as {
      status: string;
      checks: Record<string, { ok: boolean }>;
      networks: Record<string, string>;
    };
    expect(health.status).toBe("degraded");
    expect(health.networks).toEqual({ ethereum: "ok", polygon: "failing" });
    expect(Object.keys(health.checks)).toEqual([
      "database",
      "ethereum.rpc",
      "ethereum.rpc_latency",
      "ethereum.blocks_behind",
      "ethereum.head_age",
      "polygon.rpc",
      "polygon.rpc_latency",
      "polygon.blocks_behind",
      "polygon.head_age",
    ]);
    expect(
      Object.entries(health.checks)
        .filter(([, check]) => !check.ok)
        .map(([name]) => name),
    ).toEqual(["polygon.rpc", "polygon.rpc_latency", "polygon.blocks_behind", "polygon.head_age"]);

    const head = Number(await eth.client.getBlockNumber());
    const families = await until(async () => {
      const scraped = parsePrometheusText(await (await fetch(`${down.opsUrl}/metrics`)).text());
      const scanned = sampleValue(scraped, "oxbtcpay_chain_scanned_block", { network: "ethereum" });
      return scanned >= head && scraped;
    }, "ethereum scanned to its head");
    expect(sampleValue(families, "oxbtcpay_chain_scanned_block", { network: "polygon" })).toBeNaN();
    expect(
      families
        .get("oxbtcpay_rpc_errors_total")
        ?.samples.some((s) => s.labels.network === "polygon" && s.value > 0),
    ).toBe(true);
    expect(
      families
        .get("oxbtcpay_rpc_errors_total")
        ?.samples.some((s) => s.labels.network === "ethereum"),
    ).toBe(false);
  });

  test("a token whose decimals() is not 8 stops the daemon at start, naming the network", async () => {
    // Runtime code that answers 18 to any call (PUSH1 18, MSTORE, RETURN 32 bytes).
    const hash = await poly.client.sendTransaction({
      account: ANVIL_ACCOUNTS[0],
      data: "0x600a600c600039600a6000f3601260005260206000f3",
      chain: poly.client.chain,
    });
    await poly.mine(1);
    const receipt = await poly.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    const token = (receipt.contractAddress as string).toLowerCase();
    const wrong = await startDaemon({
      config: networksConfig("decimals", [ethereum(), { ...polygon(), token }], xpubOf(3)),
      logger: silentLogger,
      resolve: offlineResolver,
    });
    await expect(wrong.done).rejects.toThrow(
      `networks.1.decimals (polygon) is 8 but the token ${token} answers decimals() 18: amounts would be misread`,
    );
  });
});

/** A port on 127.0.0.1 that was free a moment ago and is closed now. */
async function closedPort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
