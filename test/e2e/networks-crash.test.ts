/**
 * Several networks as the operator runs them: `0xbtcpay serve` killed with
 * SIGKILL while it scans two chains at once, then restarted: every payment
 * must equal what the chains say (balanceOf on each network, each cursor
 * and the transfers it covers committed together). Then `status`,
 * `rescan --network` and `doctor` on the same database.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { testTokenAbi } from "../../contracts-abi/index.ts";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { CHILD_PROCESS_TIMEOUT_MS, cli, exitOf, startServe } from "../helpers/cli.ts";
import {
  anvilCall,
  paymentsOn,
  startTestChain,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { startRpcProxy } from "../helpers/proxy.ts";

const PAYER = ANVIL_ACCOUNTS[1];
const PAYMENTS = 40;
const PER_TX = 10;
const TXS = 8; // per network: 80 transfers each, every payment two on each
const NETWORKS = ["ethereum", "polygon"] as const;
type Network = (typeof NETWORKS)[number];
const CHAIN_IDS: Record<Network, number> = { ethereum: 31337, polygon: 31338 };

const chains = {} as Record<Network, TestChain>;
const dir = tempDir();
const cleanups: Array<() => unknown> = [];
beforeAll(async () => {
  const [ethereum, polygon] = await Promise.all(
    NETWORKS.map((name) => startTestChain({ chainId: CHAIN_IDS[name] })),
  );
  Object.assign(chains, { ethereum, polygon });
  await Promise.all(
    NETWORKS.map((name) => chains[name].mint(chains[name].token, PAYER, tokens(1_000))),
  );
});
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await Promise.all(NETWORKS.map((name) => chains[name]?.stop()));
  dir.cleanup();
});

/** A config of both networks, each through `rpcUrls`, on `dbPath`. */
function writeConfig(
  name: string,
  dbPath: string,
  rpcUrls: Record<Network, string>,
  startBlocks: Record<Network, number>,
) {
  const path = join(dir.path, name);
  writeFileSync(
    path,
    JSON.stringify({
      networks: NETWORKS.map((network) => ({
        name: network,
        chainId: CHAIN_IDS[network],
        rpcUrl: rpcUrls[network],
        token: chains[network].token,
        confirmations: 3,
        pollIntervalMs: 50,
        startBlock: startBlocks[network],
        maxBlockRange: 2,
        finalityDepth: 10,
      })),
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 0 },
      public: { host: "127.0.0.1", port: 0 },
      ops: { enabled: false },
      database: { path: dbPath },
      log: { level: "warn" },
    }),
  );
  return path;
}

describe("several networks, crash safety and the operator's commands", {
  timeout: CHILD_PROCESS_TIMEOUT_MS,
}, () => {
  test("kill -9 while both networks scan, twice: after the restart every payment equals balanceOf on each network; then status, rescan --network and doctor per network", async () => {
    const dbPath = join(dir.path, "networks-crash.sqlite");
    const { db, payments } = await paymentsOn({ path: dbPath });
    const rows = await Promise.all(
      Array.from({ length: PAYMENTS }, () =>
        payments.create({ amount: tokens(1), data: null, postbackUrl: null }),
      ),
    );
    db.close();

    const startBlocks = {} as Record<Network, number>;
    const heads = {} as Record<Network, number>;
    await Promise.all(
      NETWORKS.map(async (network, n) => {
        const chain = chains[network];
        startBlocks[network] = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber")) + 1;
        let sent = 0;
        for (let tx = 0; tx < TXS; tx++) {
          const to: Hex[] = [];
          const values: bigint[] = [];
          for (let k = 0; k < PER_TX; k++) {
            to.push(rows[sent % PAYMENTS]?.address as Hex);
            // Some halves, some wholes, different on each network: the sums are what matter.
            values.push(((BigInt(sent + n * 1000) * 7919n) % tokens(1)) / 2n + 20_000_000n);
            sent++;
          }
          await chain.client.writeContract({
            address: chain.token,
            abi: testTokenAbi,
            functionName: "transferMany",
            args: [to, values],
            account: PAYER,
            chain: chain.client.chain,
          });
          await chain.mine(1);
          await chain.mine(4);
        }
        heads[network] = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
      }),
    );

    // A slow provider in front of each chain, so both scans are killed in the middle.
    const proxies = await Promise.all(
      NETWORKS.map(async (network) => {
        const proxy = await startRpcProxy(chains[network].rpcUrl);
        proxy.setHook(async () => {
          await new Promise((r) => setTimeout(r, 25));
          return undefined;
        });
        cleanups.push(proxy.close);
        return proxy;
      }),
    );
    const configPath = writeConfig(
      "networks-crash.json",
      dbPath,
      { ethereum: proxies[0]?.url as string, polygon: proxies[1]?.url as string },
      startBlocks,
    );

    const reader = new Database(dbPath, { readonly: true });
    cleanups.push(() => reader.close());
    const cursor = (network: Network) =>
      (
        reader.prepare("SELECT block_number FROM chain_cursor WHERE network = ?").get(network) as
          | { block_number: number }
          | undefined
      )?.block_number ?? -1;
    const point = (network: Network, fraction: number) =>
      startBlocks[network] + Math.floor((heads[network] - startBlocks[network]) * fraction);

    const killedAt: Array<Record<Network, number>> = [];
    for (const fraction of [0.3, 0.65]) {
      const child = startServe(configPath);
      await waitFor(
        () => NETWORKS.every((network) => cursor(network) >= point(network, fraction)),
        {
          timeoutMs: 60_000,
          what: `both cursors at ${fraction} of their scans`,
        },
      );
      child.kill("SIGKILL");
      await exitOf(child);
      const at = { ethereum: cursor("ethereum"), polygon: cursor("polygon") };
      killedAt.push(at);
      for (const network of NETWORKS) {
        // Killed in the middle of each network's scan, and what is recorded
        // on each is exactly that chain's transfers up to its cursor.
        expect(at[network], network).toBeLessThan(heads[network]);
        const count = (sql: string) =>
          (reader.prepare(sql).get(network, at[network]) as { n: number }).n;
        expect(
          count("SELECT count(*) AS n FROM transfers WHERE network = ? AND block_number > ?"),
        ).toBe(0);
      }
    }
    expect(killedAt[1]?.ethereum).toBeGreaterThan(killedAt[0]?.ethereum as number);
    expect(killedAt[1]?.polygon).toBeGreaterThan(killedAt[0]?.polygon as number);

    const final = startServe(configPath);
    await waitFor(() => NETWORKS.every((network) => cursor(network) >= heads[network]), {
      timeoutMs: 60_000,
      what: "both scans finished",
    });
    final.kill("SIGTERM");
    await exitOf(final);

    expect(
      reader
        .prepare(
          "SELECT network, count(*) AS n, count(DISTINCT tx_hash || ':' || log_index) AS d FROM transfers GROUP BY network ORDER BY network",
        )
        .all(),
    ).toEqual(NETWORKS.map((network) => ({ network, n: TXS * PER_TX, d: TXS * PER_TX })));
    const received = reader.prepare(
      "SELECT value FROM transfers WHERE payment_id = ? AND network = ?",
    );
    const state = reader
      .prepare("SELECT id, address, amount, paid_amount, paid_at, network FROM payments")
      .all() as Array<{
      id: string;
      address: Hex;
      amount: string;
      paid_amount: string;
      paid_at: number | null;
      network: string | null;
    }>;
    for (const payment of state) {
      let total = 0n;
      for (const network of NETWORKS) {
        const balance = await chains[network].balanceOf(chains[network].token, payment.address);
        const recorded = (received.all(payment.id, network) as Array<{ value: string }>).reduce(
          (sum, row) => sum + BigInt(row.value),
          0n,
        );
        expect(recorded, `${payment.id} on ${network}`).toBe(balance);
        total += balance;
      }
      expect(BigInt(payment.paid_amount), payment.id).toBe(total);
      expect(payment.paid_at !== null, payment.id).toBe(total >= BigInt(payment.amount));
      if (payment.paid_at !== null) expect(NETWORKS).toContain(payment.network);
    }

    // The operator's commands, on the chains directly.
    const direct = writeConfig(
      "networks-direct.json",
      dbPath,
      { ethereum: chains.ethereum.rpcUrl, polygon: chains.polygon.rpcUrl },
      startBlocks,
    );
    const back = heads.polygon - 5;
    // NOTE: status first: the rescan below moves polygon's cursor back.
    const statusJson = await cli(["status", "--json", "--config", direct]);
    const [ambiguous, unknown, rescan, doctor] = await Promise.all([
      cli(["rescan", "--from-block", String(back), "--config", direct]),
      cli(["rescan", "--network", "polgon", "--from-block", String(back), "--config", direct]),
      cli(["rescan", "--network", "polygon", "--from-block", String(back), "--config", direct]),
      cli(["doctor", "--config", direct]),
    ]);
    const report = JSON.parse(statusJson.stdout);
    expect(report.scan).toBeUndefined();
    expect(Object.keys(report.networks)).toEqual(["ethereum", "polygon"]);
    for (const network of NETWORKS) {
      expect(report.networks[network]).toMatchObject({
        block_number: heads[network],
        head: heads[network],
        blocks_behind: 0,
      });
    }
    expect(ambiguous).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "0xbtcpay: the config has several networks: give --network (one of ethereum, polygon)\n",
    });
    expect(unknown).toEqual({
      code: 1,
      stdout: "",
      stderr: '0xbtcpay: no network named "polgon" in the config (ethereum, polygon)\n',
    });
    expect(rescan).toEqual({
      code: 0,
      stdout: `rescan: the scan cursor of network polygon moved from block ${heads.polygon} to block ${back - 1}: blocks ${back} to ${heads.polygon} are read again (at the running daemon's next poll, or at the next start)\n`,
      stderr: "",
    });
    expect(cursor("polygon")).toBe(back - 1);
    expect(cursor("ethereum")).toBe(heads.ethereum);
    expect(doctor.code).toBe(0);
    const checks = doctor.stdout.split("\n").map((line) => line.slice(0, 24).trimEnd());
    expect(checks.slice(0, 7)).toEqual([
      "ok    config",
      "ok    ethereum rpc",
      "ok    ethereum chain id",
      "ok    ethereum token",
      "ok    polygon rpc",
      "ok    polygon chain id",
      "ok    polygon token",
    ]);
  });
});
