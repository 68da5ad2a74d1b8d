/**
 * `0xbtcpay rescan`: the real binary against a daemon child on anvil (a
 * transfer deleted by hand is found again, recorded ones change nothing),
 * its refusals, and the sink's compare-and-set that lets a running daemon
 * follow a cursor moved under it.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import type { BlockHeader } from "../../src/chain/types.ts";
import { rescanFrom } from "../../src/payments/rescan.ts";
import { createPaymentStore } from "../../src/store/sqlite/payments.ts";
import { createSqliteStorage } from "../../src/store/sqlite/storage.ts";
import {
  CHILD_PROCESS_TIMEOUT_MS,
  cli,
  type DaemonChild,
  spawnDaemon,
  writeDaemonConfig,
} from "../helpers/cli.ts";
import {
  anvilCall,
  payInNewBlock,
  paymentsOn,
  startPayment,
  startTestChain,
  TEST_TOKEN,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

let chain: TestChain;
const dir = tempDir();
const cleanups: Array<() => unknown> = [];
beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, ANVIL_ACCOUNTS[1], tokens(1_000));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

let counter = 0;

type Row = Record<string, unknown>;

/** What an operator sees with sqlite3: a second connection that reads and writes. */
function operator(dbPath: string) {
  const db = new Database(dbPath);
  db.pragma("busy_timeout = 5000");
  cleanups.push(() => db.close());
  return {
    payment: (id: string) => db.prepare("SELECT * FROM payments WHERE id = ?").get(id) as Row,
    transfers: () =>
      db.prepare("SELECT * FROM transfers ORDER BY block_number, log_index").all() as Row[],
    events: () => db.prepare("SELECT count(*) FROM events").pluck().get() as number,
    cursor: () =>
      db.prepare("SELECT block_number, head_number FROM chain_cursor").get() as {
        block_number: number;
        head_number: number;
      },
    /** Deletes the transfer and puts its payment back to waiting, by hand. */
    forget(txHash: string, paymentId: string) {
      db.transaction(() => {
        db.prepare("DELETE FROM transfers WHERE tx_hash = ?").run(txHash);
        db.prepare(`UPDATE payments SET status = 'waiting', seen_at = NULL, paid_at = NULL,
          tx_hash = NULL, block_number = NULL, paid_amount = '0' WHERE id = ?`).run(paymentId);
      })();
    },
  };
}

const withoutRecordedAt = (rows: Row[]) => rows.map(({ recorded_at: _, ...rest }) => rest);

async function blockOf(hash: Hex): Promise<number> {
  const receipt = await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  return Number(receipt.blockNumber);
}

describe("rescan", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("re-finds a transfer whose row was deleted by hand (daemon running, then stopped) and changes nothing for transfers already recorded", async () => {
    const dbPath = join(dir.path, `rescan-${++counter}.sqlite`);
    const config = writeDaemonConfig(dir.path, {
      rpcUrl: chain.rpcUrl,
      token: chain.token,
      dbPath,
      name: `rescan-${counter}.json`,
    });
    let daemon: DaemonChild = await spawnDaemon(config);
    cleanups.push(() => daemon.kill9());
    const a = await startPayment(daemon.privateUrl, { amount: "1" });
    const b = await startPayment(daemon.privateUrl, { amount: "2" });
    const txA = await payInNewBlock(chain, { to: a.address, value: tokens(1) });
    const txB = await payInNewBlock(chain, { to: b.address, value: tokens(2) });
    const [blockA, blockB] = [await blockOf(txA), await blockOf(txB)];
    const db = operator(dbPath);
    await waitFor(() => db.payment(a.id).status === "paid" && db.payment(b.id).status === "paid", {
      what: "both paid",
    });
    const paidA = db.payment(a.id);
    const paidB = db.payment(b.id);
    const recorded = db.transfers();
    expect(recorded.map((t) => t.tx_hash)).toEqual([txA, txB]);
    const events = db.events();

    // 1. While the daemon runs.
    db.forget(txA, a.id);
    expect(db.payment(a.id).status).toBe("waiting");
    const head = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
    await waitFor(() => db.cursor().block_number === head, { what: "cursor at the head" });
    const running = await cli(["rescan", "--from-block", String(blockA), "--config", config]);
    expect(running).toEqual({
      code: 0,
      stdout: `rescan: the scan cursor moved from block ${head} to block ${blockA - 1}: blocks ${blockA} to ${head} are read again (at the running daemon's next poll, or at the next start)\n`,
      stderr: "",
    });
    await waitFor(() => db.payment(a.id).status === "paid", { what: "a paid again" });
    await waitFor(() => db.cursor().block_number === head, { what: "cursor back at the head" });
    expect(withoutRecordedAt(db.transfers())).toEqual(withoutRecordedAt(recorded));
    // The recorded transfer of b was read again and ignored: b is exactly as it was.
    expect(db.payment(b.id)).toEqual(paidB);
    // a is paid again by the same transfer; only the times it was seen and paid are new.
    const { paid_at: _paidAt, seen_at: _seenAt, ...restA } = paidA;
    expect(db.payment(a.id)).toMatchObject(restA);
    expect(db.events()).toBe(events);

    // 2. While it is stopped: the next start reads the blocks again.
    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    db.forget(txB, b.id);
    const stopped = await cli(["rescan", "--from-block", String(blockB), "--config", config]);
    expect(stopped.stdout).toBe(
      `rescan: the scan cursor moved from block ${head} to block ${blockB - 1}: blocks ${blockB} to ${head} are read again (at the running daemon's next poll, or at the next start)\n`,
    );
    expect(db.cursor().block_number).toBe(blockB - 1);
    const beforeRestart = db.payment(a.id);
    daemon = await spawnDaemon(config);
    await waitFor(() => db.payment(b.id).status === "paid", { what: "b paid again" });
    await waitFor(() => db.cursor().block_number === head, { what: "cursor back at the head" });
    expect(withoutRecordedAt(db.transfers())).toEqual(withoutRecordedAt(recorded));
    const { paid_at: _paidB, seen_at: _seenB, ...restB } = paidB;
    expect(db.payment(b.id)).toMatchObject(restB);
    expect(db.payment(a.id)).toEqual(beforeRestart);
    expect(db.events()).toBe(events);
  });

  test("refuses blocks above the scan position, below chain.startBlock, and a database never scanned; the next block is a no-op", async () => {
    const dbPath = join(dir.path, `refusals-${++counter}.sqlite`);
    const { db } = await paymentsOn({ path: dbPath, token: chain.token });
    const config = writeDaemonConfig(dir.path, {
      rpcUrl: chain.rpcUrl,
      token: chain.token,
      dbPath,
      chain: { startBlock: 5 },
      name: `refusals-${counter}.json`,
    });
    const rescan = (block: string) => cli(["rescan", "--from-block", block, "--config", config]);

    expect(await rescan("7")).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "0xbtcpay: the daemon has not scanned anything yet: its first start begins at chain.startBlock (or at the head); nothing to rescan\n",
    });
    createPaymentStore(db).setCursor({
      chain_id: 31337,
      token: chain.token,
      block_number: 20,
      block_hash: null,
      head_number: 23,
      updated_at: 1,
    });
    db.close();
    const [above, below, next, bad] = await Promise.all([
      rescan("22"),
      rescan("4"),
      rescan("21"),
      rescan("twelve"),
    ]);
    expect(above.stderr).toBe(
      "0xbtcpay: block 22 is above the scan position: the daemon has read up to block 20 and reads block 21 next\n",
    );
    expect(below.stderr).toBe(
      "0xbtcpay: block 4 is below chain.startBlock (5), where the scan began: lower chain.startBlock in the config first if funds can be there\n",
    );
    expect(next).toEqual({
      code: 0,
      stdout: "rescan: nothing to move: the daemon reads block 21 next anyway\n",
      stderr: "",
    });
    expect(bad.stderr).toBe(
      "error: option '--from-block <n>' argument 'twelve' is invalid. expected a block number\n",
    );
    expect([above.code, below.code, bad.code]).toEqual([1, 1, 1]);
  });
});

describe("the sink follows a cursor moved under it", () => {
  const hash = (n: number) => `0x${n.toString(16).padStart(64, "0")}`;
  const header = (n: number): BlockHeader => ({
    number: n,
    hash: hash(n),
    parentHash: hash(n - 1),
    timestamp: Math.floor(Date.now() / 1000),
  });

  test("a batch fetched before a rescan is dropped; one from the new cursor is applied; a rewind keeps a cursor a rescan moved lower", async () => {
    const { db, payments } = await paymentsOn();
    const payment = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const transfer = {
      txHash: hash(0xabc),
      logIndex: 0,
      blockNumber: 11,
      blockHash: hash(11),
      from: ANVIL_ACCOUNTS[1] as string,
      to: payment.address,
      value: tokens(1),
      blockTimestamp: Math.floor(Date.now() / 1000),
    };
    await payments.sink.initCursor(header(10), 12);
    const rescan = (fromBlock: number) =>
      rescanFrom({
        storage: createSqliteStorage(db),
        chainId: 31337,
        token: TEST_TOKEN,
        startBlock: undefined,
        fromBlock,
        now: 1,
      });

    expect(await rescan(6)).toEqual({ from: 10, to: 5 });
    expect(await payments.sink.cursor()).toEqual({ blockNumber: 5, blockHash: null });
    // Fetched from the old cursor (block 11): dropped, nothing recorded.
    await payments.sink.applyBatch({
      fromBlock: 11,
      toBlock: 11,
      blocks: [header(11)],
      head: 12,
      transfers: [transfer],
    });
    expect((await payments.sink.cursor())?.blockNumber).toBe(5);
    expect((await payments.get(payment.id))?.paid_amount).toBe("0");
    // From the new cursor: applied.
    await payments.sink.applyBatch({
      fromBlock: 6,
      toBlock: 11,
      blocks: [header(11)],
      head: 12,
      transfers: [transfer],
    });
    expect(await payments.sink.cursor()).toEqual({ blockNumber: 11, blockHash: hash(11) });
    expect((await payments.get(payment.id))?.paid_amount).toBe("100000000");
    // The header of block 10 is known: a rescan from 11 keeps the reorg check on it.
    expect(await rescan(11)).toEqual({ from: 11, to: 10 });
    expect(await payments.sink.cursor()).toEqual({ blockNumber: 10, blockHash: hash(10) });

    expect(await rescan(3)).toEqual({ from: 10, to: 2 });
    await payments.sink.rewind({ number: 8, hash: hash(8) }, 12);
    expect(await payments.sink.cursor()).toEqual({ blockNumber: 2, blockHash: null });
    expect((await payments.get(payment.id))?.paid_amount).toBe("0");
    db.close();
  });
});
