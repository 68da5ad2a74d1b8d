/**
 * The merchant API end to end: the daemon from a config with API
 * keys and a trusted proxy, on a real anvil chain, over real sockets.
 */
import { join } from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import { type Daemon, startDaemon } from "../../src/daemon.ts";
import { generateApiKey, hashApiKey } from "../../src/rpc/api-keys.ts";
import {
  dbOf,
  LOOPBACK_TARGETS,
  offlineResolver,
  STATUS_KEYS,
  silentLogger,
  startReceiver,
  startTestChain,
  status,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import type { Json } from "../helpers/private-app.ts";

const PAYER = ANVIL_ACCOUNTS[1];
const shopKey = generateApiKey();
const readerKey = generateApiKey();

let chain: TestChain;
let daemon: Daemon;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const dir = tempDir();

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(100));
  receiver = await startReceiver();
  const config = parseConfig({
    chain: {
      rpcUrl: chain.rpcUrl,
      chainId: 31337,
      token: chain.token,
      confirmations: 3,
      pollIntervalMs: 50,
    },
    wallet: { xpub: DEV_XPUB },
    private: {
      host: "127.0.0.1",
      port: 0,
      allow: ["203.0.113.0/24"],
      trustProxy: ["127.0.0.1"],
      apiKeys: [
        {
          name: "shop",
          hash: hashApiKey(shopKey),
          permissions: ["payments:create", "payments:read", "payments:cancel"],
        },
        { name: "reader", hash: hashApiKey(readerKey), permissions: ["payments:read"] },
      ],
    },
    public: { host: "127.0.0.1", port: 0, rateLimit: { windowMs: 60_000, max: 0 } },
    ops: { port: 0 },
    // The receiver listens on loopback, which the SSRF guard refuses by default.
    postbacks: { allowTargets: LOOPBACK_TARGETS },
    database: { path: join(dir.path, "merchant.sqlite") },
    log: { level: "silent" },
  });
  daemon = await startDaemon({ config, logger: silentLogger, resolve: offlineResolver });
});
afterAll(async () => {
  await daemon?.stop();
  await receiver?.close();
  await chain?.stop();
  dir.cleanup();
});

async function rpc(body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${daemon.privateUrl}/`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: (text === "" ? undefined : JSON.parse(text)) as Json };
}
const call = (method: string, params: unknown, key = shopKey) =>
  rpc({ jsonrpc: "2.0", id: 1, method, params }, { authorization: `Bearer ${key}` });

async function pay(to: Hex, value: bigint): Promise<{ hash: Hex; block: bigint }> {
  const hash = await chain.submitTransfer({ token: chain.token, from: PAYER, to, value });
  await chain.mine(1);
  const receipt = await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  return { hash, block: receipt.blockNumber };
}

async function scannedTo(block: bigint) {
  return waitFor(
    async () => ((await daemon.payments.scanPosition())?.blockNumber ?? -1) >= Number(block),
    {
      what: `daemon scanned block ${block}`,
    },
  );
}

describe("merchant API on a running daemon", () => {
  test("cancel_payment, then a full transfer: status cancelled, the funds recorded as received, no postback", async () => {
    const made = await call("start_payment", {
      amount: "1",
      order_id: "e2e-cancel",
      postback_url: receiver.url,
    });
    const { id, address } = made.json.result;
    const cancelled = await call("cancel_payment", { id });
    expect(cancelled.json.result.status).toBe("cancelled");

    const { hash, block } = await pay(address, tokens(1));
    await chain.mine(3);
    await scannedTo(block + 3n);

    const view = await status(daemon.publicUrl, id);
    expect(view.body).toMatchObject({
      status: "cancelled",
      paid_amount: "1",
      paid_at: null,
      tx_hash: null,
    });
    expect(view.body.seen_at).not.toBeNull();
    const full = await call("get_payment", { order_id: "e2e-cancel" }, readerKey);
    expect(full.json.result).toMatchObject({
      id,
      status: "cancelled",
      paid_amount: "1",
      paid_at: null,
      postbacks: [],
    });
    expect(
      dbOf(daemon).prepare("SELECT tx_hash, value FROM transfers WHERE payment_id = ?").all(id),
    ).toEqual([{ tx_hash: hash, value: tokens(1).toString() }]);
    expect(receiver.received).toHaveLength(0);
  });

  test("a paid payment cannot be cancelled, and shows its postback state", async () => {
    const made = await call("start_payment", { amount: "2", postback_url: receiver.url });
    const { id, address } = made.json.result;
    const { block } = await pay(address, tokens(2));
    await chain.mine(2);
    await scannedTo(block + 2n);
    await waitFor(async () => (await status(daemon.publicUrl, id)).body.status === "paid");
    const refused = await call("cancel_payment", { id });
    expect(refused.json.error).toEqual({
      code: -32602,
      message: "Invalid params: payment already paid",
    });
    const delivered = await waitFor(async () => {
      const r = await call("get_payment", { id });
      return r.json.result.postbacks[0]?.state === "delivered" ? r.json.result : undefined;
    });
    expect(delivered.postbacks[0]).toMatchObject({
      event: "payment.paid",
      attempts: 1,
      last_status: 200,
    });
  });

  test("API keys from the config: none → 403, a key without the permission → 403, the right key → ok", async () => {
    const none = await rpc({ jsonrpc: "2.0", id: 1, method: "list_payments", params: {} });
    expect(none.status).toBe(403);
    expect(none.json.error.message).toBe("Forbidden: missing API key");
    const reader = await call("cancel_payment", { id: "0123456789abcdef" }, readerKey);
    expect(reader.status).toBe(403);
    expect(reader.json.error.message).toBe("Forbidden: missing permission payments:cancel");
    const listed = await call("list_payments", { limit: 1 }, readerKey);
    expect(listed.status).toBe(200);
    expect(listed.json.result.payments).toHaveLength(1);
  });

  test("private.trustProxy: X-Forwarded-For from the trusted proxy decides who is calling", async () => {
    const allowed = await rpc(
      { jsonrpc: "2.0", id: 1, method: "list_payments", params: { limit: 1 } },
      { authorization: `Bearer ${shopKey}`, "x-forwarded-for": "198.51.100.1, 203.0.113.5" },
    );
    expect(allowed.status).toBe(200);
    const refused = await rpc(
      { jsonrpc: "2.0", id: 1, method: "list_payments", params: { limit: 1 } },
      { authorization: `Bearer ${shopKey}`, "x-forwarded-for": "198.51.100.1" },
    );
    expect(refused.status).toBe(403);
    expect(refused.json).toEqual({
      jsonrpc: "2.0",
      error: { code: -32001, message: "Forbidden" },
      id: null,
    });
  });

  test("status.json never reveals data, order_id, description or postback details", async () => {
    const made = await call("start_payment", {
      amount: "0.5",
      order_id: "secret-order-77",
      description: "hidden description",
      data: { token: "do-not-leak" },
      postback_url: "http://127.0.0.1:9/hidden-postback",
      return_url: "https://shop.example/hidden-return",
    });
    const response = await fetch(`${daemon.publicUrl}/${made.json.result.id}/status.json`);
    const text = await response.text();
    for (const secret of ["secret-order-77", "hidden", "do-not-leak"]) {
      expect(text).not.toContain(secret);
    }
    expect(Object.keys(JSON.parse(text))).toEqual(STATUS_KEYS);
  });
});
