/**
 * Never miss, never double count: downtime, provider limits, reorgs, expiry,
 * multi-log transactions. All on a real anvil chain.
 */
import { join } from "node:path";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { testTokenAbi } from "../../contracts-abi/index.ts";
import { createAddressDeriver } from "../../src/addresses/index.ts";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { createChainClient } from "../../src/chain/client.ts";
import { createChainWatcher } from "../../src/chain/watcher.ts";
import { type ConfigInput, parseConfig } from "../../src/config/index.ts";
import type { Daemon } from "../../src/daemon.ts";
import {
  anvilCall,
  chainAlignedClock,
  dbOf,
  manualClock,
  paymentsOn,
  silentLogger,
  skewedClock,
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
import { type RpcCall, rpcError, startRpcProxy } from "../helpers/proxy.ts";

const PAYER = ANVIL_ACCOUNTS[1];
let chain: TestChain;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(1_000_000));
});
afterAll(async () => {
  await chain?.stop();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function newDbPath(): string {
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  return join(dir.path, "test.sqlite");
}

async function daemon(
  dbPath: string,
  overrides: Parameters<typeof startTestDaemon>[2] = {},
  options: Parameters<typeof startTestDaemon>[3] & { rpcUrl?: string } = {},
): Promise<Daemon> {
  const d = await startTestDaemon(
    { rpcUrl: options.rpcUrl ?? chain.rpcUrl, token: chain.token },
    dbPath,
    overrides,
    options,
  );
  cleanups.push(() => d.stop());
  return d;
}

async function head(): Promise<number> {
  return Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
}

async function pay(to: Hex, value: bigint): Promise<{ hash: Hex; block: number }> {
  const hash = await chain.submitTransfer({ token: chain.token, from: PAYER, to, value });
  await chain.mine(1);
  const receipt = await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  return { hash, block: Number(receipt.blockNumber) };
}

async function paidView(d: Daemon, id: string) {
  return waitFor(
    async () => {
      const s = await status(d.publicUrl, id);
      return s.body.paid_at !== null ? s.body : undefined;
    },
    { what: `payment ${id} paid` },
  );
}

async function statusIs(d: Daemon, id: string, wanted: string) {
  return waitFor(
    async () => {
      const s = await status(d.publicUrl, id);
      return s.body.status === wanted ? s.body : undefined;
    },
    { what: `payment ${id} ${wanted}` },
  );
}

/** Creates payments in a database without running a watcher (so nothing is scanned yet). */
async function preparePayments(dbPath: string, amounts: bigint[]) {
  const { db, payments } = await paymentsOn({ path: dbPath, token: chain.token });
  const rows = await Promise.all(
    amounts.map((amount) => payments.create({ amount, data: null, postbackUrl: null })),
  );
  db.close();
  return rows;
}

describe("catch-up after downtime", () => {
  test("down for 500 blocks with 3 payments paid meanwhile: all paid after restart, right tx and block", async () => {
    const dbPath = newDbPath();
    const first = await daemon(dbPath);
    const payments = [];
    for (const amount of ["1", "2.5", "0.00000001"])
      payments.push(await startPayment(first.privateUrl, { amount }));
    await waitFor(async () => first.payments.scanPosition());
    await first.stop();

    const paid: Array<{ hash: Hex; block: number }> = [];
    const values = [tokens(1), 250_000_000n, 1n];
    for (const [i, payment] of payments.entries()) {
      await chain.mine(100);
      paid.push(await pay(payment.address, values[i] as bigint));
    }
    await chain.mine(200);

    const second = await daemon(dbPath);
    for (const [i, payment] of payments.entries()) {
      const view = await paidView(second, payment.id);
      expect(view.tx_hash).toBe(paid[i]?.hash);
      expect((await second.payments.get(payment.id))?.block_number).toBe(paid[i]?.block);
    }
    expect(second.watcher.stats().reorgs).toBe(0);
  });

  test("a payment past its deadline is still paid by a transfer whose block came before the deadline", async () => {
    const dbPath = newDbPath();
    const clock = skewedClock();
    const first = await daemon(dbPath, { payments: { expiresAfter: "1h" } }, { clock });
    const payment = await startPayment(first.privateUrl, { amount: "1" });
    await first.stop();
    const { hash } = await pay(payment.address, tokens(1));
    await chain.mine(3);
    clock.skewMs += 2 * 3600 * 1000; // the daemon comes back after the deadline
    const second = await daemon(dbPath, { payments: { expiresAfter: "1h" } }, { clock });
    expect((await paidView(second, payment.id)).tx_hash).toBe(hash);
  });
});

describe("payment lifecycle", () => {
  test("one transaction carrying two Transfer logs pays two payments", async () => {
    const d = await daemon(newDbPath());
    const a = await startPayment(d.privateUrl, { amount: "1" });
    const b = await startPayment(d.privateUrl, { amount: "2" });
    const hash = await chain.client.writeContract({
      address: chain.token,
      abi: testTokenAbi,
      functionName: "transferMany",
      args: [
        [a.address, b.address],
        [tokens(1), tokens(2)],
      ],
      account: PAYER,
      chain: chain.client.chain,
    });
    await chain.mine(3);
    const [va, vb] = [await paidView(d, a.id), await paidView(d, b.id)];
    expect(va.tx_hash).toBe(hash);
    expect(vb.tx_hash).toBe(hash);
    const rows = dbOf(d)
      .prepare("SELECT payment_id, log_index FROM transfers WHERE tx_hash = ? ORDER BY log_index")
      .all(hash);
    expect(rows).toEqual([
      { payment_id: a.id, log_index: 0 },
      { payment_id: b.id, log_index: 1 },
    ]);
  });

  test("partial then complete: seen with the partial amount, then paid with the completing tx", async () => {
    const d = await daemon(newDbPath());
    const p = await startPayment(d.privateUrl, { amount: "3" });
    await pay(p.address, tokens(1));
    const seen = await statusIs(d, p.id, "seen");
    expect(seen).toMatchObject({ paid_amount: "1", paid_at: null, overpaid_amount: "0" });
    expect(seen.transfers).toHaveLength(1);
    const second = await pay(p.address, tokens(3));
    await chain.mine(2);
    const view = await paidView(d, p.id);
    expect(view).toMatchObject({
      tx_hash: second.hash,
      paid_amount: "4",
      overpaid_amount: "1",
      status: "paid",
    });
    expect(view.transfers.map((t) => t.amount)).toEqual(["1", "3"]);
  });

  describe("expiry (block time decides, clock moved forward)", () => {
    const alignedClock = () => chainAlignedClock(chain);
    const setNextBlockTime = (seconds: number) =>
      anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [seconds]);

    test("unpaid → expired at the deadline", async () => {
      const clock = await alignedClock();
      const d = await daemon(newDbPath(), { payments: { expiresAfter: "1h" } }, { clock });
      const p = await startPayment(d.privateUrl, { amount: "1" });
      expect((await status(d.publicUrl, p.id)).body.status).toBe("waiting");
      clock.skewMs += 3600 * 1000;
      expect((await status(d.publicUrl, p.id)).body).toMatchObject({
        status: "expired",
        paid_at: null,
      });
    });

    test("full amount mined before the deadline but confirming after it → paid", async () => {
      const clock = await alignedClock();
      const d = await daemon(newDbPath(), { payments: { expiresAfter: "1h" } }, { clock });
      const p = await startPayment(d.privateUrl, { amount: "1" });
      const deadline = Math.floor(clock.now() / 1000) + 3600;
      await setNextBlockTime(deadline - 60);
      const { hash } = await pay(p.address, tokens(1));
      await statusIs(d, p.id, "seen");
      clock.skewMs += 3600 * 1000 + 120_000; // now past the deadline, still confirming
      expect((await status(d.publicUrl, p.id)).body.status).toBe("seen");
      await setNextBlockTime(deadline + 120);
      await chain.mine(2);
      const view = await paidView(d, p.id);
      expect(view).toMatchObject({ status: "paid", tx_hash: hash, late: false, paid_late: false });
    });

    test("full amount after the deadline → expired and paid_late, never paid; the shop is told", async () => {
      const receiver = await startReceiver();
      cleanups.push(receiver.close);
      const clock = await alignedClock();
      const d = await daemon(newDbPath(), { payments: { expiresAfter: "1h" } }, { clock });
      const p = await startPayment(d.privateUrl, {
        amount: "1",
        postback_url: receiver.url,
        postback_events: ["payment.paid", "payment.paid_late"],
      });
      const deadline = Math.floor(clock.now() / 1000) + 3600;
      clock.skewMs += 3600 * 1000 + 60_000;
      await setNextBlockTime(deadline + 30);
      const { hash } = await pay(p.address, tokens(1));
      await chain.mine(2);
      const view = await waitFor(async () => {
        const s = await status(d.publicUrl, p.id);
        return s.body.paid_late ? s.body : undefined;
      });
      expect(view).toMatchObject({
        status: "expired",
        paid_at: null,
        tx_hash: null,
        late: true,
        late_amount: "1",
      });
      expect(view.transfers).toEqual([
        expect.objectContaining({ tx_hash: hash, late: true, amount: "1" }),
      ]);
      const postback = await waitFor(() => receiver.received[0]);
      expect(JSON.parse(postback.body)).toMatchObject({
        id: p.id,
        event: "payment.paid_late",
        status: "expired",
      });
    });

    test("partial before the deadline, the rest after → expired, paid late", async () => {
      const clock = await alignedClock();
      const d = await daemon(newDbPath(), { payments: { expiresAfter: "1h" } }, { clock });
      const p = await startPayment(d.privateUrl, { amount: "2" });
      const deadline = Math.floor(clock.now() / 1000) + 3600;
      await setNextBlockTime(deadline - 100);
      await pay(p.address, tokens(1));
      await statusIs(d, p.id, "seen");
      clock.skewMs += 3600 * 1000 + 60_000;
      expect((await status(d.publicUrl, p.id)).body.status).toBe("expired");
      await setNextBlockTime(deadline + 30);
      await pay(p.address, tokens(1));
      await chain.mine(2);
      const view = await waitFor(async () => {
        const s = await status(d.publicUrl, p.id);
        return s.body.paid_late ? s.body : undefined;
      });
      expect(view).toMatchObject({
        status: "expired",
        paid_amount: "2",
        late_amount: "1",
        paid_at: null,
      });
    });
  });
});

describe("reorgs (anvil_reorg / anvil_rollback, seen on the hash chain)", () => {
  test("depth 1 removing the payment tx → waiting with seen_at null; re-included later → paid in the new block", async () => {
    const d = await daemon(newDbPath());
    const p = await startPayment(d.privateUrl, { amount: "1" });
    const { hash, block } = await pay(p.address, tokens(1));
    await statusIs(d, p.id, "seen");
    const raw = await anvilCall<Hex>(chain.rpcUrl, "eth_getRawTransactionByHash", [hash]);

    await anvilCall(chain.rpcUrl, "anvil_reorg", [1, []]);
    const waiting = await statusIs(d, p.id, "waiting");
    expect(waiting).toMatchObject({ seen_at: null, paid_amount: "0", transfers: [] });
    expect(d.watcher.stats().reorgs).toBeGreaterThanOrEqual(1);

    await anvilCall(chain.rpcUrl, "eth_sendRawTransaction", [raw]);
    await chain.mine(1);
    await chain.mine(2);
    const view = await paidView(d, p.id);
    expect(view.tx_hash).toBe(hash);
    expect((await d.payments.get(p.id))?.block_number).toBe(block + 1);
    expect(
      dbOf(d).prepare("SELECT count(*) AS n FROM transfers WHERE payment_id = ?").get(p.id),
    ).toEqual({ n: 1 });
  });

  test("depth 2 moving the tx to another block: counted once, confirmations recounted on the new chain", async () => {
    const d = await daemon(newDbPath());
    const p = await startPayment(d.privateUrl, { amount: "1" });
    const { hash, block } = await pay(p.address, tokens(1));
    await chain.mine(1); // 2 confirmations at block
    await waitFor(async () => (await status(d.publicUrl, p.id)).body.confirmations === 2);
    const raw = await anvilCall<Hex>(chain.rpcUrl, "eth_getRawTransactionByHash", [hash]);
    // Replace blocks `block` and `block + 1`; the tx lands in the second one.
    await anvilCall(chain.rpcUrl, "anvil_reorg", [2, [[raw, 1]]]);
    await waitFor(async () => (await d.payments.get(p.id))?.block_number === block + 1, {
      what: "moved to the new block",
    });
    const moved = await status(d.publicUrl, p.id);
    expect(moved.body).toMatchObject({ status: "seen", confirmations: 1 });
    await chain.mine(2);
    const view = await paidView(d, p.id);
    expect(view.tx_hash).toBe(hash);
    expect((await d.payments.get(p.id))?.block_number).toBe(block + 1);
    expect(dbOf(d).prepare("SELECT count(*) AS n FROM transfers").get()).toEqual({ n: 1 });
  });

  test("anvil_rollback below a seen payment → waiting again", async () => {
    const d = await daemon(newDbPath());
    const p = await startPayment(d.privateUrl, { amount: "1" });
    await pay(p.address, tokens(1));
    await statusIs(d, p.id, "seen");
    await anvilCall(chain.rpcUrl, "anvil_rollback", [1]);
    const view = await statusIs(d, p.id, "waiting");
    expect(view.seen_at).toBeNull();
  });

  test("a reorg deeper than the confirmations after paid: flagged and reported, not silently un-paid", async () => {
    const receiver = await startReceiver();
    cleanups.push(receiver.close);
    const d = await daemon(newDbPath());
    const p = await startPayment(d.privateUrl, {
      amount: "1",
      postback_url: receiver.url,
      postback_events: ["payment.paid", "payment.reorged_after_paid"],
    });
    const { hash } = await pay(p.address, tokens(1));
    await chain.mine(2);
    await paidView(d, p.id);
    await waitFor(() => receiver.received.length === 1);
    // The watcher has every block up to the head before the reorg (paid may come earlier).
    const top = await head();
    await waitFor(async () => (await d.payments.sink.cursor())?.blockNumber === top, {
      what: "cursor at head",
    });

    await anvilCall(chain.rpcUrl, "anvil_reorg", [4, []]);
    const view = await waitFor(async () => {
      const s = await status(d.publicUrl, p.id);
      return s.body.reorged_after_paid ? s.body : undefined;
    });
    expect(view).toMatchObject({
      status: "paid",
      tx_hash: hash,
      paid_amount: "0",
      reorged_after_paid: true,
    });
    expect(d.watcher.stats().deepestReorg).toBeGreaterThanOrEqual(3);
    const postback = await waitFor(() => receiver.received[1]);
    expect(JSON.parse(postback.body)).toMatchObject({
      id: p.id,
      event: "payment.reorged_after_paid",
    });
  });
});

describe("provider limits and failures (a misbehaving proxy in front of anvil)", () => {
  /** Payments for DEV_XPUB indexes 0..2, paid 40 blocks apart, scanned later through the proxy. */
  async function paidHistory() {
    const start = (await head()) + 1;
    const deriver = createAddressDeriver({ xpub: DEV_XPUB });
    const hashes: Hex[] = [];
    for (let i = 0; i < 3; i++) {
      await chain.mine(40);
      hashes.push((await pay(deriver.derive(i) as Hex, tokens(i + 1))).hash);
    }
    await chain.mine(40);
    return { start, hashes };
  }

  /**
   * A daemon on a fresh database holding the three payments of `paidHistory`,
   * scanning through `rpcUrl` from `chain.startBlock`; resolves once all three
   * are paid with the expected transactions.
   */
  async function catchUpThrough(
    rpcUrl: string,
    hashes: Hex[],
    chainConfig: Partial<ConfigInput["chain"]>,
  ) {
    const dbPath = newDbPath();
    const rows = await preparePayments(dbPath, [tokens(1), tokens(2), tokens(3)]);
    const d = await daemon(dbPath, { chain: chainConfig }, { rpcUrl });
    for (const [i, row] of rows.entries())
      expect((await paidView(d, row.id)).tx_hash).toBe(hashes[i]);
    return d;
  }

  const limitErrors: Array<[string, (call: RpcCall, from: number) => ReturnType<typeof rpcError>]> =
    [
      [
        "Infura",
        (call, from) =>
          rpcError(
            call,
            -32005,
            `query returned more than 10000 results. Try with this block range [0x${from.toString(16)}, 0x${(from + 9).toString(16)}].`,
          ),
      ],
      [
        "Alchemy",
        (call, from) =>
          rpcError(
            call,
            -32602,
            `Log response size exceeded. Based on your parameters, this block range should work: [0x${from.toString(16)}, 0x${(from + 9).toString(16)}]`,
          ),
      ],
      ["QuickNode", (call) => rpcError(call, -32602, "eth_getLogs is limited to a 10 range")],
      ["PublicNode", (call) => rpcError(call, -32600, "exceed maximum block range: 10")],
      [
        "llamarpc",
        (call, from) =>
          rpcError(
            call,
            -32000,
            `query exceeds max results 20000, retry with the range ${from}-${from + 9}`,
          ),
      ],
      ["no suggestion (halve)", (call) => rpcError(call, -32000, "block range is too wide")],
    ];

  test.each(limitErrors)(
    "%s range errors: the range adapts and no payment is missed",
    async (_name, error) => {
      const { start, hashes } = await paidHistory();
      const proxy = await startRpcProxy(chain.rpcUrl);
      cleanups.push(proxy.close);
      proxy.setHook((call) => {
        if (call.method !== "eth_getLogs") return undefined;
        const filter = call.params[0] as { fromBlock?: string; toBlock?: string };
        if (!filter.fromBlock || !filter.toBlock) return undefined;
        const from = Number(filter.fromBlock);
        return Number(filter.toBlock) - from + 1 > 10 ? error(call, from) : undefined;
      });
      const d = await catchUpThrough(proxy.url, hashes, {
        startBlock: start,
        finalityDepth: 5,
        maxBlockRange: 100,
      });
      const stats = d.watcher.stats();
      expect(stats.rangeShrinks).toBeGreaterThanOrEqual(1);
      expect(stats.range).toBeLessThanOrEqual(15);
    },
  );

  test("429 with Retry-After and -32005 rate limits: backs off, never skips a range", async () => {
    const { start, hashes } = await paidHistory();
    const proxy = await startRpcProxy(chain.rpcUrl);
    cleanups.push(proxy.close);
    // The watcher alone, on a clock that moves only as far as the watcher waits.
    const clock = manualClock(Date.now());
    let getLogs = 0;
    const limitedAt: number[] = [];
    const getLogsAt: number[] = [];
    proxy.setHook((call) => {
      if (call.method !== "eth_getLogs") return undefined;
      getLogs++;
      getLogsAt.push(clock.now());
      if (getLogs === 2) {
        limitedAt.push(clock.now());
        return { status: 429, headers: { "retry-after": "1" }, body: "Too Many Requests" };
      }
      if (getLogs === 4) return rpcError(call, -32005, "project ID request rate exceeded");
      return undefined;
    });
    const dbPath = newDbPath();
    const rows = await preparePayments(dbPath, [tokens(1), tokens(2), tokens(3)]);
    const { db, payments } = await paymentsOn({ path: dbPath, token: chain.token, clock });
    cleanups.push(() => db.close());
    const watcher = createChainWatcher({
      client: createChainClient({ rpcUrl: proxy.url }),
      sink: payments.sink,
      clock,
      logger: silentLogger,
      chainId: 31337,
      token: chain.token,
      pollIntervalMs: 50,
      maxBlockRange: 30,
      finalityDepth: 5,
      startBlock: start,
    });
    const controller = new AbortController();
    const running = watcher.run(controller.signal);
    cleanups.push(async () => {
      controller.abort();
      await running;
    });
    const stopped = running.then(() => {
      throw new Error("the watcher stopped");
    });

    // Each time the watcher waits, move the clock to the end of its wait.
    const tip = await head();
    const waits: Array<{ ms: number; afterGetLogs: number }> = [];
    while (((await payments.scanPosition())?.blockNumber ?? -1) < tip) {
      const ms = await Promise.race([clock.sleeping(), stopped]);
      waits.push({ ms, afterGetLogs: getLogs });
      clock.advance(ms);
    }
    expect(watcher.stats().rateLimited).toBe(2);
    // Retry-After: 1 honoured: the watcher waited 1 s on its clock, and the
    // next eth_getLogs came no sooner.
    expect(waits.find((wait) => wait.afterGetLogs === 2)?.ms).toBe(1000);
    expect(limitedAt).toHaveLength(1);
    expect((getLogsAt[2] as number) - (limitedAt[0] as number)).toBeGreaterThanOrEqual(1000);
    // It went on to the head and skipped nothing: each payment is paid by its transfer.
    for (const [i, row] of rows.entries()) {
      expect(await payments.get(row.id)).toMatchObject({
        tx_hash: hashes[i],
        paid_at: expect.any(Number),
      });
    }
  });

  test("a lagging provider (older heads, unknown blocks, dropped and slow connections) misses nothing", async () => {
    const { start, hashes } = await paidHistory();
    const proxy = await startRpcProxy(chain.rpcUrl);
    cleanups.push(proxy.close);
    let n = 0;
    const refusedHashes = new Map<string, number>();
    const cursors: number[] = [];
    proxy.setHook(async (call) => {
      n++;
      if (n % 11 === 0) return "drop";
      if (n % 5 === 0) await new Promise((r) => setTimeout(r, 30));
      if (call.method === "eth_blockNumber" && n % 3 === 0) {
        // A backend 3 blocks behind.
        return { rewrite: (result) => `0x${(Number(result) - 3).toString(16)}` };
      }
      const filter = call.params[0] as { blockHash?: string } | undefined;
      if (call.method === "eth_getLogs" && filter?.blockHash) {
        // Every 5th block is not yet known to the backend that answers first.
        const seen = refusedHashes.get(filter.blockHash) ?? 0;
        refusedHashes.set(filter.blockHash, seen + 1);
        if (seen === 0 && refusedHashes.size % 5 === 0)
          return rpcError(call, -32000, "unknown block");
      }
      return undefined;
    });
    const dbPath = newDbPath();
    const rows = await preparePayments(dbPath, [tokens(1), tokens(2), tokens(3)]);
    const d = await daemon(
      dbPath,
      { chain: { startBlock: start, finalityDepth: 50, maxBlockRange: 25, pollIntervalMs: 50 } },
      { rpcUrl: proxy.url },
    );
    const track = setInterval(async () => {
      const c = (await d.payments.scanPosition())?.blockNumber;
      if (c !== undefined) cursors.push(c);
    }, 5);
    cleanups.push(() => clearInterval(track));
    for (const [i, row] of rows.entries())
      expect((await paidView(d, row.id)).tx_hash).toBe(hashes[i]);
    // The cursor never went backwards (no reorg happened) and no transfer was recorded twice.
    expect(cursors.every((c, i) => i === 0 || c >= (cursors[i - 1] as number))).toBe(true);
    expect(d.watcher.stats().reorgs).toBe(0);
    expect(dbOf(d).prepare("SELECT count(*) AS n FROM transfers").get()).toEqual({ n: 3 });
  });
});

describe("websocket wake-ups", () => {
  test("newHeads wakes the poller; a websocket dropped mid-run misses no payment", async () => {
    const upstreamUrl = chain.rpcUrl.replace("http://", "ws://");
    const sockets = new Set<WebSocket>();
    const subscribed: string[] = [];
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise((r) => server.once("listening", r));
    server.on("connection", (client) => {
      const upstream = new WebSocket(upstreamUrl);
      sockets.add(client);
      sockets.add(upstream);
      const pending: string[] = [];
      upstream.on("open", () => {
        for (const m of pending.splice(0)) upstream.send(m);
      });
      client.on("message", (m) => {
        subscribed.push(String(m));
        if (upstream.readyState === WebSocket.OPEN) upstream.send(String(m));
        else pending.push(String(m));
      });
      upstream.on("message", (m) => client.readyState === WebSocket.OPEN && client.send(String(m)));
      client.on("close", () => upstream.close());
      upstream.on("close", () => client.close());
    });
    const { port } = server.address() as { port: number };
    const d = await daemon(newDbPath(), {
      chain: { wsUrl: `ws://127.0.0.1:${port}`, pollIntervalMs: 400 },
    });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.terminate();
          server.close(() => resolve());
        }),
    );
    await waitFor(() => subscribed.some((m) => m.includes("newHeads")), {
      what: "eth_subscribe newHeads",
    });
    const a = await startPayment(d.privateUrl, { amount: "1" });
    await pay(a.address, tokens(1));
    await chain.mine(2);
    await paidView(d, a.id);

    // The socket dies mid-run (and cannot reconnect): polling alone still finds the payment.
    server.close();
    for (const s of sockets) s.terminate();
    const b = await startPayment(d.privateUrl, { amount: "2" });
    const { hash } = await pay(b.address, tokens(2));
    await chain.mine(2);
    expect((await paidView(d, b.id)).tx_hash).toBe(hash);
  });
});

test("config: chain.wsUrl must be a ws(s) URL", async () => {
  expect(() =>
    parseConfig({
      chain: { rpcUrl: "http://127.0.0.1:1", chainId: 1, wsUrl: "http://127.0.0.1:1" },
      wallet: { xpub: DEV_XPUB },
      database: { path: "x" },
    }),
  ).toThrow(/chain\.wsUrl: expected a ws\(s\) URL/);
});
