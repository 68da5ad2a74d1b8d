/**
 * kill -9 at several moments of a long scan: after each restart every payment
 * must be exactly where the chain says (cursor and state commit together).
 * On both backends: a SQLite file, and a PostgreSQL database on a throwaway
 * cluster.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { testTokenAbi } from "../../contracts-abi/index.ts";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { BACKENDS, useBackends } from "../helpers/backends.ts";
import { exitOf, startServe } from "../helpers/cli.ts";
import {
  anvilCall,
  paymentsWith,
  startTestChain,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { startRpcProxy } from "../helpers/proxy.ts";

const PAYER = ANVIL_ACCOUNTS[1];
const PAYMENTS = 200;
const PER_TX = 10;
const TXS = 25; // 250 transfers: every payment gets one, the first 50 get two

const dir = tempDir();
const backends = useBackends();
afterAll(() => {
  dir.cleanup();
});

describe.each(BACKENDS)("crash safety on %s", (backend) => {
  // A chain of its own: each backend's payments have the same addresses
  // (the same xpub from index 0), and balanceOf must be this run's funds only.
  let chain: TestChain;
  beforeAll(async () => {
    chain = await startTestChain();
    await chain.mint(chain.token, PAYER, tokens(1_000_000));
  });
  afterAll(async () => {
    await chain?.stop();
  });

  test("kill -9 at 6 moments of a 250-transfer scan: paid_amount equals balanceOf, no duplicate transfers", async () => {
    const database = await backends.fresh(backend);
    // Payments exist before any scanning.
    const storage = await database.storage();
    const payments = await paymentsWith({ storage, token: chain.token });
    const rows = await Promise.all(
      Array.from({ length: PAYMENTS }, () =>
        payments.create({ amount: tokens(1), data: null, postbackUrl: null }),
      ),
    );
    await storage.close();

    const startBlock = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber")) + 1;
    let sent = 0;
    for (let tx = 0; tx < TXS; tx++) {
      const to: Hex[] = [];
      const values: bigint[] = [];
      for (let k = 0; k < PER_TX; k++) {
        const index = sent % PAYMENTS;
        to.push(rows[index]?.address as Hex);
        // Some full, some partial, some over: the sum is what matters.
        values.push(((BigInt(sent) * 7919n) % tokens(1)) + 50_000_000n);
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
      await chain.mine(3);
    }
    const head = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));

    // A slow provider, so the scan takes long enough to be killed in the middle.
    const proxy = await startRpcProxy(chain.rpcUrl);
    proxy.setHook(async () => {
      await new Promise((r) => setTimeout(r, 15));
      return undefined;
    });
    const configPath = join(dir.path, `crash-${backend}.json`);
    writeFileSync(
      configPath,
      JSON.stringify({
        chain: {
          rpcUrl: proxy.url,
          chainId: 31337,
          token: chain.token,
          confirmations: 3,
          pollIntervalMs: 50,
          startBlock,
          maxBlockRange: 3,
          finalityDepth: 20,
        },
        wallet: { xpub: DEV_XPUB },
        private: { host: "127.0.0.1", port: 0 },
        public: { host: "127.0.0.1", port: 0 },
        ops: { port: 0 },
        database:
          typeof database.target === "string"
            ? { path: database.target }
            : { url: database.target.url },
        log: { level: "warn" },
      }),
    );

    const cursor = async () =>
      (await database.query<{ block_number: number }>("SELECT block_number FROM chain_cursor"))[0]
        ?.block_number ?? -1;
    const span = head - startBlock;
    const killPoints = [0.1, 0.25, 0.4, 0.55, 0.7, 0.85].map(
      (f) => startBlock + Math.floor(span * f),
    );
    const killedAt: number[] = [];
    for (const point of killPoints) {
      const child = startServe(configPath);
      await waitFor(async () => (await cursor()) >= point, {
        timeoutMs: 30_000,
        what: `cursor at ${point}`,
      });
      child.kill("SIGKILL");
      await exitOf(child);
      const at = await cursor();
      killedAt.push(at);
      // Invariant at every kill: what is recorded is exactly the chain's transfers up to the cursor.
      const recorded = await database.query(
        "SELECT count(*) AS n FROM transfers WHERE block_number <= ?",
        [at],
      );
      const all = await database.query("SELECT count(*) AS n FROM transfers");
      expect(recorded).toEqual(all);
    }
    expect(new Set(killedAt).size).toBeGreaterThanOrEqual(5);

    const final = startServe(configPath);
    await waitFor(async () => (await cursor()) >= head, {
      timeoutMs: 30_000,
      what: "scan finished",
    });
    final.kill("SIGTERM");
    await exitOf(final);
    await proxy.close();

    const transferCount = await database.query(
      "SELECT count(*) AS n, count(DISTINCT tx_hash || ':' || log_index) AS d FROM transfers",
    );
    expect(transferCount).toEqual([{ n: TXS * PER_TX, d: TXS * PER_TX }]);
    const state = await database.query<{
      id: string;
      address: Hex;
      paid_amount: string;
      amount: string;
      paid_at: number | null;
    }>("SELECT id, address, paid_amount, amount, paid_at FROM payments");
    expect(state).toHaveLength(PAYMENTS);
    for (const payment of state) {
      const balance = await chain.balanceOf(chain.token, payment.address);
      expect(BigInt(payment.paid_amount), payment.id).toBe(balance);
      expect(payment.paid_at !== null, payment.id).toBe(balance >= BigInt(payment.amount));
    }
  });
});
