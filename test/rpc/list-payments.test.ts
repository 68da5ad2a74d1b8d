/**
 * list_payments reads the stored lifecycle: it agrees with get_payment for
 * payments completed by late funds (it used to miss them), and a page costs
 * a bounded number of queries whatever its size (it used to cost ~4 a row).
 */
import Database from "better-sqlite3";
import { afterEach, describe, expect, test } from "vitest";
import type { BlockHeader } from "../../src/chain/types.ts";
import { createAllowlist } from "../../src/internal/allowlist.ts";
import { createPrivateListener } from "../../src/rpc/index.ts";
import { migrate } from "../../src/store/sqlite/index.ts";
import { paymentsOn, rpc, silentLogger, skewedClock, tokens } from "../helpers/index.ts";
import { listenNode } from "../helpers/private-app.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The payment logic and the private port on a database that counts the statements it runs. */
async function setup() {
  let statements = 0;
  const db = new Database(":memory:", { verbose: () => statements++ });
  migrate(db);
  const clock = skewedClock();
  const { payments } = await paymentsOn({
    db,
    clock,
    requiredConfirmations: 1,
    expiresAfterSeconds: 3600,
  });
  await payments.sink.initCursor({ number: 0, hash: "0xb0", parentHash: "0x", timestamp: 0 }, 0);
  const server = await listenNode(
    createPrivateListener({
      payments,
      allowlist: createAllowlist({ allow: [] }),
      decimals: 8,
      maxWholeTokens: 20_999_984n,
      logger: silentLogger,
    }),
  );
  cleanups.push(server.close, () => db.close());
  let n = 0;
  /** Mines one synthetic block (block time `seconds`) paying `value` to each address. */
  const pay = async (addresses: string[], value: bigint, seconds: number) => {
    n++;
    const block: BlockHeader = {
      number: n,
      hash: `0xb${n}`,
      parentHash: `0xb${n - 1}`,
      timestamp: seconds,
    };
    await payments.sink.applyBatch({
      fromBlock: n,
      toBlock: n,
      blocks: [block],
      head: n,
      transfers: addresses.map((to, i) => ({
        txHash: `0xt${n}_${i}`,
        logIndex: i,
        blockNumber: n,
        blockHash: block.hash,
        from: "0xfrom",
        to,
        value,
        blockTimestamp: seconds,
      })),
    });
  };
  const call = async (method: string, params: Record<string, unknown>) =>
    (await rpc(server.url, { jsonrpc: "2.0", id: 1, method, params })).json.result;
  return { payments, clock, pay, call, statements: () => statements };
}

describe("list_payments reads the stored status", () => {
  test("a payment completed by late funds is listed as expired, as get_payment and status.json say", async () => {
    const { payments, clock, pay, call } = await setup();
    const p = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const deadline = Math.floor(p.expires_at / 1000);
    clock.skewMs += 3600 * 1000 + 60_000;
    await payments.deadlines.sweep();
    await pay([p.address], tokens(1), deadline + 30);
    const got = await call("get_payment", { id: p.id });
    expect(got).toMatchObject({ status: "expired", paid_late: true, paid_amount: "1" });
    expect(JSON.parse((await payments.statusJson(p.id)) as string).status).toBe("expired");
    const expired = await call("list_payments", { status: "expired" });
    expect(expired.payments.map((row: { id: string }) => row.id)).toEqual([p.id]);
    expect((await call("list_payments", { status: "seen" })).payments).toEqual([]);
  });

  test("a page of 1,000 payments with transfers and events costs the same few queries as a page of 2", async () => {
    const { payments, pay, call, statements } = await setup();
    const rows = await Promise.all(
      Array.from({ length: 1_000 }, () =>
        payments.create({
          amount: tokens(1),
          data: null,
          postbackUrl: "https://shop.example/pb",
          postbackEvents: ["payment.seen", "payment.paid"],
        }),
      ),
    );
    await pay(
      rows.map((row) => row.address),
      tokens(1),
      Math.floor(Date.now() / 1000),
    );
    const queriesFor = async (limit: number) => {
      const before = statements();
      const page = await call("list_payments", { limit });
      expect(page.payments).toHaveLength(limit);
      return statements() - before;
    };
    const small = await queriesFor(2);
    const large = await queriesFor(1_000);
    expect(large).toBe(small);
    // The page itself, the head, the transfers and the postback events.
    expect(large).toBe(4);
    const page = await call("list_payments", { limit: 1 });
    expect(page.payments[0]).toMatchObject({ status: "paid", transfers: [{ amount: "1" }] });
    expect(page.payments[0].postbacks.map((e: { event: string }) => e.event)).toEqual([
      "payment.seen",
      "payment.paid",
    ]);
  });
});
