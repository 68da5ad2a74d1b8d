import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { BlockHeader, TokenTransfer } from "../../src/chain/types.ts";
import { generatePaymentId, PAYMENT_ID_PATTERN } from "../../src/payments/ids.ts";
import { paymentsOn, skewedClock, tempDir, tokens } from "../helpers/index.ts";

/** The payment logic fed synthetic batches, as the watcher would hand them over. */
async function setup(path = ":memory:") {
  const clock = skewedClock();
  const { db, payments } = await paymentsOn({
    path,
    clock,
    requiredConfirmations: 1,
    expiresAfterSeconds: 3600,
    monitorForSeconds: 86_400,
  });
  await payments.sink.initCursor({ number: 0, hash: "0x00", parentHash: "0x", timestamp: 0 }, 0);
  let n = 0;
  const block = (): BlockHeader => {
    n++;
    return { number: n, hash: `0xb${n}`, parentHash: `0xb${n - 1}`, timestamp: 0 };
  };
  const transfer = (
    to: string,
    value: bigint,
    blockNumber: number,
    blockTimestamp: number,
  ): TokenTransfer => ({
    txHash: `0xt${blockNumber}`,
    logIndex: 0,
    blockNumber,
    blockHash: `0xb${blockNumber}`,
    from: "0xfrom",
    to,
    value,
    blockTimestamp,
  });
  return { clock, db, payments, block, transfer };
}

describe("payment ids", () => {
  test("16 lowercase hex characters, all different, across many refills of the random pool", async () => {
    const ids = Array.from({ length: 20_000 }, () => generatePaymentId());
    expect(ids.every((id) => PAYMENT_ID_PATTERN.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test("a created payment's row is the stored row, defaults included", async () => {
    const { db, payments } = await paymentsOn();
    const row = await payments.create({ amount: 5n, data: null, postbackUrl: null });
    expect(row).toEqual({
      ...(db.prepare("SELECT * FROM payments WHERE id = ?").get(row.id) as object),
      created: true,
    });
    expect(row).toMatchObject({ paid_amount: "0", late_amount: "0", seen_at: null });
  });
});

describe("late funds and the monitoring window", () => {
  test("late funds within payments.monitorFor are recorded; after it they are ignored", async () => {
    const { db, payments, block, transfer } = await setup();
    const p = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const expiresAt = Math.floor(p.expires_at / 1000);
    const b1 = block();
    await payments.sink.applyBatch({
      fromBlock: b1.number,
      toBlock: b1.number,
      blocks: [b1],
      head: b1.number,
      transfers: [transfer(p.address, 40_000_000n, b1.number, expiresAt + 86_400)],
    });
    const b2 = block();
    await payments.sink.applyBatch({
      fromBlock: b2.number,
      toBlock: b2.number,
      blocks: [b2],
      head: b2.number,
      transfers: [transfer(p.address, tokens(5), b2.number, expiresAt + 86_401)],
    });
    expect(db.prepare("SELECT value FROM transfers").all()).toEqual([{ value: "40000000" }]);
    const view = await payments.view(p.id);
    expect(view).toMatchObject({
      late: true,
      late_amount: "0.4",
      paid_amount: "0.4",
      paid_late: false,
    });
  });

  test("a transfer to an address of no payment is not recorded; the cursor still moves", async () => {
    const { db, payments, block, transfer } = await setup();
    const b = block();
    await payments.sink.applyBatch({
      fromBlock: b.number,
      toBlock: b.number,
      blocks: [b],
      head: b.number,
      transfers: [transfer("0x000000000000000000000000000000000000dead", 1n, b.number, 0)],
    });
    expect(db.prepare("SELECT count(*) AS n FROM transfers").get()).toEqual({ n: 0 });
    expect(await payments.sink.cursor()).toEqual({ blockNumber: b.number, blockHash: b.hash });
  });

  test("filter keeps only transfers to payment addresses", async () => {
    const { payments, transfer } = await setup();
    const p = await payments.create({ amount: 1n, data: null, postbackUrl: null });
    const kept = await payments.sink.filter([
      transfer("0xdead", 1n, 1, 0),
      transfer(p.address, 2n, 1, 0),
    ]);
    expect(kept.map((t) => t.to)).toEqual([p.address]);
  });
});

describe("status.json cache", () => {
  test("a cached body follows every write and the deadline", async () => {
    const { clock, payments, block, transfer } = await setup();
    const p = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const first = await payments.statusJson(p.id);
    expect(JSON.parse(first as string)).toMatchObject({ status: "waiting", paid_amount: "0" });
    expect(await payments.statusJson(p.id)).toBe(first);
    const b = block();
    await payments.sink.applyBatch({
      fromBlock: b.number,
      toBlock: b.number,
      blocks: [b],
      head: b.number,
      transfers: [transfer(p.address, 10_000_000n, b.number, 0)],
    });
    expect(JSON.parse((await payments.statusJson(p.id)) as string)).toMatchObject({
      status: "seen",
      paid_amount: "0.1",
    });
    // The deadline sweep stores "expired": the cached body follows that write.
    clock.skewMs += 3600 * 1000;
    expect(JSON.parse((await payments.statusJson(p.id)) as string)).toMatchObject({
      status: "seen",
    });
    await payments.deadlines.sweep();
    expect(JSON.parse((await payments.statusJson(p.id)) as string)).toMatchObject({
      status: "expired",
    });
    expect(await payments.statusJson("0000000000000000")).toBeUndefined();
  });

  test("a write by another connection (a CLI command) invalidates it too", async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, "cache.sqlite");
      const { db, payments } = await setup(path);
      const p = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
      expect(JSON.parse((await payments.statusJson(p.id)) as string).status).toBe("waiting");
      const other = await paymentsOn({ path });
      await other.payments.cancel(p.id);
      other.db.close();
      expect(JSON.parse((await payments.statusJson(p.id)) as string).status).toBe("cancelled");
      db.close();
    } finally {
      dir.cleanup();
    }
  });
});

describe("change feed", () => {
  test("a commit tells subscribers the payments it changed and whether the head moved; a rollback tells nothing", async () => {
    const { payments, block, transfer } = await setup();
    const p = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const other = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const seen: Array<{ ids: readonly string[]; head: boolean }> = [];
    const unsubscribe = payments.onChange((change) => seen.push(change));

    const b = block();
    await expect(
      payments.sink.applyBatch({
        fromBlock: b.number,
        toBlock: b.number,
        blocks: [],
        head: b.number,
        transfers: [transfer(other.address, 1n, b.number, 0)],
      }),
    ).rejects.toThrow("batch without its last block header");
    expect(seen).toEqual([]);

    await payments.sink.applyBatch({
      fromBlock: b.number,
      toBlock: b.number,
      blocks: [b],
      head: b.number,
      transfers: [transfer(p.address, 10_000_000n, b.number, 0)],
    });
    expect(seen).toEqual([{ ids: [p.id], head: true }]);
    await payments.sink.applyHead(b.number);
    expect(seen).toHaveLength(1);
    await payments.cancel(other.id);
    expect(seen.at(-1)).toEqual({ ids: [other.id], head: false });
    unsubscribe();
    await payments.sink.applyHead(b.number + 1);
    expect(seen).toHaveLength(2);
  });
});

describe("status bodies in bulk", () => {
  test("statusJsonMany gives each payment the same body as statusJson, and leaves unknown ids out", async () => {
    const { payments, block, transfer } = await setup();
    const [a, b, c] = (await Promise.all(
      [1n, 2n, 3n].map((n) =>
        payments.create({ amount: tokens(n), data: null, postbackUrl: null }),
      ),
    )) as [PaymentRowWithCreated, PaymentRowWithCreated, PaymentRowWithCreated];
    const first = block();
    await payments.sink.applyBatch({
      fromBlock: first.number,
      toBlock: first.number,
      blocks: [first],
      head: first.number,
      transfers: [transfer(a.address, tokens(1), first.number, 0)],
    });
    const second = block();
    await payments.sink.applyBatch({
      fromBlock: second.number,
      toBlock: second.number,
      blocks: [second],
      head: second.number,
      transfers: [transfer(b.address, 5n, second.number, 0)],
    });
    const bulk = await payments.statusJsonMany([a.id, b.id, c.id, "0000000000000000"]);
    expect([...bulk.keys()].sort()).toEqual([a.id, b.id, c.id].sort());
    for (const id of [a.id, b.id, c.id]) expect(bulk.get(id)).toBe(await payments.statusJson(id));
    expect(JSON.parse(bulk.get(a.id) as string)).toMatchObject({
      status: "paid",
      transfers: [{ amount: "1" }],
    });
  });
});

type PaymentRowWithCreated = Awaited<
  ReturnType<Awaited<ReturnType<typeof paymentsOn>>["payments"]["create"]>
>;
