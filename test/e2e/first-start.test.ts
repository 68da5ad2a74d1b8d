/**
 * A daemon's first start on a new database: the scan begins at the head of
 * its first poll, so start_payment waits for that poll; a payment paid the
 * moment it is created is then never below the scan.
 */
import { join } from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import { SCAN_NOT_STARTED } from "../../src/rpc/methods/start-payment.ts";
import {
  payInNewBlock,
  rpc,
  startPayment,
  startTestChain,
  startTestDaemon,
  status,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { startRpcProxy } from "../helpers/proxy.ts";

let chain: TestChain;
const dir = tempDir();
beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, ANVIL_ACCOUNTS[1] as Hex, tokens(10));
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

describe("first start", () => {
  test("start_payment waits for the first poll: paid at once, mined at once, it is still found", async () => {
    // The provider is slow to give the first head: the ports are open long before.
    const proxy = await startRpcProxy(chain.rpcUrl);
    let first = true;
    proxy.setHook(async () => {
      if (first) {
        first = false;
        await new Promise((resolve) => setTimeout(resolve, 1_500));
      }
      return undefined;
    });
    const daemon = await startTestDaemon(
      { rpcUrl: proxy.url, token: chain.token },
      join(dir.path, "slow.sqlite"),
      { chain: { confirmations: 1 } },
    );
    try {
      const payment = await startPayment(daemon.privateUrl, {
        amount: "1",
        data: null,
        postback_url: null,
      });
      await payInNewBlock(chain, { to: payment.address, value: tokens(1) });
      await chain.mine(3);
      await waitFor(
        async () => (await status(daemon.publicUrl, payment.id)).body.status === "paid",
        { what: "paid" },
      );
    } finally {
      await daemon.stop();
      await proxy.close();
    }
  });

  test("while the provider never answers, start_payment is refused with a retryable error and creates nothing", async () => {
    const proxy = await startRpcProxy(chain.rpcUrl);
    proxy.setMode("http500");
    const daemon = await startTestDaemon(
      { rpcUrl: proxy.url, token: chain.token },
      join(dir.path, "down.sqlite"),
    );
    try {
      const { json } = await rpc(daemon.privateUrl, {
        jsonrpc: "2.0",
        id: 1,
        method: "start_payment",
        params: { amount: "1", data: null, postback_url: null },
      });
      expect(json.error).toEqual({
        code: SCAN_NOT_STARTED,
        message: "the daemon has not read the chain yet (first start): try again in a moment",
      });
      expect((await daemon.payments.list({ limit: 10 })).payments).toEqual([]);
      // Once the provider answers, the same call works.
      proxy.setMode("pass");
      await waitFor(async () => daemon.payments.scanPosition(), { what: "first scan position" });
      const payment = await startPayment(daemon.privateUrl, {
        amount: "1",
        data: null,
        postback_url: null,
      });
      expect(payment.id).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      await daemon.stop();
      await proxy.close();
    }
  });
});
