import { join } from "node:path";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import type { Daemon } from "../../src/daemon.ts";
import {
  anvilCall,
  dbOf,
  rpc,
  STATUS_KEYS,
  startPayment,
  startReceiver,
  startTestChain,
  startTestDaemon,
  status,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { startRpcProxy } from "../helpers/proxy.ts";

const PAYER = ANVIL_ACCOUNTS[1];
const OTHER_PAYER = ANVIL_ACCOUNTS[2];

let chain: TestChain;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(1_000));
  await chain.mint(chain.token, OTHER_PAYER, tokens(1_000));
});
afterAll(async () => {
  await chain?.stop();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function daemonOn(
  dbPath?: string,
  rpcUrl = chain.rpcUrl,
): Promise<{ daemon: Daemon; dbPath: string }> {
  let path = dbPath;
  if (!path) {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    path = join(dir.path, "test.sqlite");
  }
  const daemon = await startTestDaemon({ rpcUrl, token: chain.token }, path);
  cleanups.push(() => daemon.stop());
  return { daemon, dbPath: path };
}

/** Head block number as the daemon last recorded it, once it has scanned `block`. */
async function scannedTo(daemon: Daemon, block: bigint) {
  return waitFor(
    async () => ((await daemon.payments.scanPosition())?.blockNumber ?? -1) >= Number(block),
    {
      what: `daemon scanned block ${block}`,
    },
  );
}

async function pay(
  to: Hex,
  value: bigint,
  from: Hex = PAYER,
): Promise<{ hash: Hex; block: bigint }> {
  const hash = await chain.submitTransfer({ token: chain.token, from, to, value });
  await chain.mine(1);
  const receipt = await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  return { hash, block: receipt.blockNumber };
}

describe("end to end on anvil", () => {
  test("start_payment → exact transfer → seen → confirmations → paid → postback with the shop's data", async () => {
    const receiver = await startReceiver();
    cleanups.push(receiver.close);
    const { daemon } = await daemonOn();
    const data = { order_id: "444", secret: "s3cr3t", nested: [1, { x: true }] };
    const payment = await startPayment(daemon.privateUrl, {
      amount: "0.29",
      data,
      postback_url: receiver.url,
    });

    const initial = await status(daemon.publicUrl, payment.id);
    expect(initial.status).toBe(200);
    expect(initial.headers.get("access-control-allow-origin")).toBe("*");
    expect(initial.body).toMatchObject({
      address: payment.address,
      amount: "0.29",
      seen_at: null,
      paid_at: null,
      tx_hash: null,
      status: "waiting",
      paid_amount: "0",
      confirmations: 0,
      required_confirmations: 3,
    });
    expect(Object.keys(initial.body).slice(0, 5)).toEqual([
      "address",
      "amount",
      "seen_at",
      "paid_at",
      "tx_hash",
    ]);

    const { hash, block } = await pay(payment.address, 29_000_000n);
    const seen = await waitFor(
      async () => {
        const s = await status(daemon.publicUrl, payment.id);
        return s.body.status === "seen" ? s.body : undefined;
      },
      { what: "seen" },
    );
    expect(Number.isInteger(seen.seen_at)).toBe(true);
    expect(Math.abs((seen.seen_at ?? 0) - Date.now() / 1000)).toBeLessThan(60);
    expect(seen).toMatchObject({
      paid_at: null,
      tx_hash: null,
      paid_amount: "0.29",
      confirmations: 1,
    });

    await chain.mine(1);
    await scannedTo(daemon, block + 1n);
    const two = await status(daemon.publicUrl, payment.id);
    expect(two.body).toMatchObject({ status: "seen", paid_at: null, confirmations: 2 });
    expect(receiver.received).toHaveLength(0);

    await chain.mine(1);
    const paid = await waitFor(
      async () => {
        const s = await status(daemon.publicUrl, payment.id);
        return s.body.paid_at !== null ? s.body : undefined;
      },
      { what: "paid" },
    );
    expect(paid).toMatchObject({
      status: "paid",
      tx_hash: hash,
      paid_amount: "0.29",
      confirmations: 3,
    });
    expect(paid.paid_at).toBeGreaterThanOrEqual(seen.seen_at ?? Number.POSITIVE_INFINITY);
    expect((await daemon.payments.get(payment.id))?.block_number).toBe(Number(block));

    const postback = await waitFor(() => receiver.received[0], { what: "postback" });
    expect(postback.method).toBe("POST");
    expect(postback.headers["content-type"]).toBe("application/json");
    const body = JSON.parse(postback.body);
    expect(Object.keys(body).slice(0, 3)).toEqual(["id", "data", "tx_hash"]);
    expect(body).toMatchObject({
      id: payment.id,
      tx_hash: hash,
      status: "paid",
      amount: "0.29",
      address: payment.address,
    });
    expect(typeof body.data).toBe("string");
    expect(JSON.parse(body.data)).toEqual(data);

    const event = await waitFor(async () => {
      const [e] = await daemon.payments.outbox.byPayment(payment.id);
      return e?.state === "delivered" ? e : undefined;
    });
    expect(event).toMatchObject({
      type: "payment.paid",
      attempts: 1,
      last_status: 200,
      url: receiver.url,
    });
    expect(await daemon.payments.outbox.attemptsOf(event.id)).toMatchObject([
      { status: 200, error: null },
    ]);
    expect(receiver.received).toHaveLength(1);
  });

  test("two transfers that add up to the amount: tx_hash is the second one", async () => {
    const { daemon } = await daemonOn();
    const payment = await startPayment(daemon.privateUrl, { amount: "1.5" });
    await pay(payment.address, tokens(1));
    await waitFor(async () => (await status(daemon.publicUrl, payment.id)).body.status === "seen");
    expect((await status(daemon.publicUrl, payment.id)).body.paid_amount).toBe("1");
    const second = await pay(payment.address, 50_000_000n, OTHER_PAYER);
    await chain.mine(2);
    const paid = await waitFor(async () => {
      const s = await status(daemon.publicUrl, payment.id);
      return s.body.paid_at !== null ? s.body : undefined;
    });
    expect(paid).toMatchObject({ tx_hash: second.hash, paid_amount: "1.5", status: "paid" });
  });

  test("an overpayment is paid and the whole amount received is recorded", async () => {
    const { daemon } = await daemonOn();
    const payment = await startPayment(daemon.privateUrl, { amount: "2" });
    const { hash } = await pay(payment.address, tokens(3));
    await chain.mine(2);
    const paid = await waitFor(async () => {
      const s = await status(daemon.publicUrl, payment.id);
      return s.body.paid_at !== null ? s.body : undefined;
    });
    expect(paid).toMatchObject({ tx_hash: hash, amount: "2", paid_amount: "3" });
  });

  test("a transfer to an unrelated address changes nothing", async () => {
    const { daemon } = await daemonOn();
    const payment = await startPayment(daemon.privateUrl, { amount: "1" });
    const { block } = await pay(OTHER_PAYER, tokens(1));
    await chain.mine(3);
    await scannedTo(daemon, block + 3n);
    expect((await status(daemon.publicUrl, payment.id)).body).toMatchObject({
      status: "waiting",
      seen_at: null,
      paid_at: null,
      paid_amount: "0",
    });
    expect(dbOf(daemon).prepare("SELECT count(*) AS n FROM transfers").get()).toEqual({ n: 0 });
  });

  test("a daemon restarted on the same database mid-flow (after seen) still marks the payment paid", async () => {
    const receiver = await startReceiver();
    cleanups.push(receiver.close);
    const first = await daemonOn();
    const payment = await startPayment(first.daemon.privateUrl, {
      amount: "5",
      data: { order: 1 },
      postback_url: receiver.url,
    });
    const { hash } = await pay(payment.address, tokens(5));
    await waitFor(
      async () => (await status(first.daemon.publicUrl, payment.id)).body.status === "seen",
    );
    await first.daemon.stop();

    // Blocks mined while it is down still count.
    await chain.mine(3);
    const second = await daemonOn(first.dbPath);
    const paid = await waitFor(async () => {
      const s = await status(second.daemon.publicUrl, payment.id);
      return s.body.paid_at !== null ? s.body : undefined;
    });
    expect(paid).toMatchObject({ tx_hash: hash, status: "paid" });
    const postback = await waitFor(() => receiver.received[0]);
    expect(JSON.parse(JSON.parse(postback.body).data)).toEqual({ order: 1 });
    expect(dbOf(second.daemon).prepare("SELECT count(*) AS n FROM transfers").get()).toEqual({
      n: 1,
    });
  });

  test("a failing provider is retried, never crashes the daemon and never advances the cursor", async () => {
    const proxy = await startRpcProxy(chain.rpcUrl);
    cleanups.push(proxy.close);
    const { daemon } = await daemonOn(undefined, proxy.url);
    const payment = await startPayment(daemon.privateUrl, { amount: "1" });
    await scannedTo(daemon, BigInt(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber")));
    const cursorBefore = (await daemon.payments.scanPosition())?.blockNumber;

    for (const mode of ["http500", "drop"] as const) {
      proxy.setMode(mode);
      const seenRequests = proxy.requests.length;
      const { hash } = await pay(payment.address, 10_000_000n);
      await chain.mine(3);
      // The daemon keeps trying (more requests arrive) while the provider fails.
      await waitFor(() => proxy.requests.length >= seenRequests + 2, {
        what: `retries in ${mode} mode`,
      });
      expect((await daemon.payments.scanPosition())?.blockNumber).toBe(cursorBefore);
      expect((await status(daemon.publicUrl, payment.id)).body.status).toBe("waiting");
      expect(hash).toMatch(/^0x/);
    }

    proxy.setMode("pass");
    const head = await chain.client.getBlockNumber();
    await scannedTo(daemon, head);
    const s = await status(daemon.publicUrl, payment.id);
    expect(s.body).toMatchObject({ status: "seen", paid_amount: "0.2" });
  });

  test("a provider on another chain stops the daemon with a clear error", async () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const { startDaemon } = await import("../../src/daemon.ts");
    const { testConfig, silentLogger } = await import("../helpers/index.ts");
    const config = testConfig(
      { rpcUrl: chain.rpcUrl, token: chain.token },
      join(dir.path, "x.sqlite"),
    );
    const daemon = await startDaemon({
      config: { ...config, chain: { ...config.chain, chainId: 1 } },
      logger: silentLogger,
    });
    cleanups.push(() => daemon.stop());
    await expect(daemon.done).rejects.toThrow(
      "chain.chainId is 1 but the RPC provider serves chain 31337",
    );
  });
});

describe("public port", () => {
  test("unknown and malformed ids are 404 with CORS", async () => {
    const { daemon } = await daemonOn();
    for (const path of [
      "0123456789abcdef",
      "0123456789ABCDEF",
      "xyz",
      "0123456789abcde",
      "..%2f",
    ]) {
      const response = await fetch(`${daemon.publicUrl}/${path}/status.json`);
      expect(response.status).toBe(404);
      expect(response.headers.get("access-control-allow-origin")).toBe("*");
    }
    expect((await fetch(`${daemon.publicUrl}/`)).status).toBe(404);
  });

  test("the private port answers without CORS headers", async () => {
    const { daemon } = await daemonOn();
    const { headers, json } = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "nope",
      params: {},
    });
    expect(json.error.message).toBe("Method not found");
    expect(headers.get("access-control-allow-origin")).toBeNull();
  });

  test("status.json never reveals data or the postback URL", async () => {
    const { daemon } = await daemonOn();
    const payment = await startPayment(daemon.privateUrl, {
      amount: "1",
      data: { secret: "do-not-leak" },
      postback_url: "http://127.0.0.1:9/hidden",
    });
    const response = await fetch(`${daemon.publicUrl}/${payment.id}/status.json`);
    const text = await response.text();
    expect(text).not.toContain("do-not-leak");
    expect(text).not.toContain("hidden");
    expect(Object.keys(JSON.parse(text))).toEqual(STATUS_KEYS);
  });
});
