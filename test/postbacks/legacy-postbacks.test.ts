/**
 * A shop built for the original 0xBTCpay treats ANY POST to its postback
 * URL as "paid" (its demo shop checks the secret inside `data` and ships).
 * On a real anvil chain, payments take every path (paid, expired, paid
 * late, cancelled then funded, reorged after paid, reorged back to waiting)
 * with a receiver that fails each event's first attempt: without an opt-in
 * it only ever gets payment.paid, once per paid payment (retries share one
 * webhook-id); with one, each opted-in event arrives once, in order.
 */
import { join } from "node:path";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import { EVENT_TYPES, type EventType } from "../../src/payments/index.ts";
import {
  anvilCall,
  chainAlignedClock,
  payInNewBlock,
  type ReceivedRequest,
  rpc,
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

/**
 * The original demo shop's handler: any POST whose `data` carries the
 * order's secret marks that order paid. It answers 500 to the first attempt
 * of each webhook-id, so every event is retried once.
 */
async function demoShop() {
  const paidOrders: string[] = [];
  const attempts = new Map<string, number>();
  const delivered: ReceivedRequest[] = [];
  const shop = await startReceiver((request) => {
    const id = request.headers["webhook-id"] as string;
    attempts.set(id, (attempts.get(id) ?? 0) + 1);
    if (attempts.get(id) === 1) return 500;
    const body = JSON.parse(request.body);
    const data = JSON.parse(body.data);
    if (data.secret === `secret-${data.order_id}`) paidOrders.push(data.order_id);
    delivered.push(request);
    return 200;
  });
  cleanups.push(shop.close);
  return { ...shop, paidOrders, attempts, delivered };
}

async function runEveryPath(postbackEvents: readonly EventType[] | undefined) {
  const shop = await demoShop();
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  const clock = await chainAlignedClock(chain);
  const daemon = await startTestDaemon(
    { rpcUrl: chain.rpcUrl, token: chain.token },
    join(dir.path, "legacy.sqlite"),
    { postbacks: { retrySchedule: ["100ms", "100ms", "100ms"] } },
    { clock },
  );
  cleanups.push(() => daemon.stop());

  const create = (order: string, params: Record<string, unknown> = {}) =>
    startPayment(daemon.privateUrl, {
      amount: "2",
      data: { order_id: order, secret: `secret-${order}` },
      postback_url: shop.url,
      ...(postbackEvents ? { postback_events: postbackEvents } : {}),
      ...params,
    });
  const paid = await create("paid");
  const expired = await create("expired", { expires_in: 60 });
  const late = await create("late", { expires_in: 60 });
  const cancelled = await create("cancelled");
  const reorged = await create("reorged");
  const unseen = await create("unseen");

  const pay = (to: Hex, amount: bigint) => payInNewBlock(chain, { to, value: amount });
  const statusOf = (
    id: string,
    wanted: (s: Awaited<ReturnType<typeof status>>["body"]) => boolean,
  ) =>
    waitFor(async () => wanted((await status(daemon.publicUrl, id)).body), { what: `${id} state` });
  const caughtUp = async () => {
    const top = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
    await waitFor(async () => ((await daemon.payments.scanPosition())?.blockNumber ?? -1) >= top);
  };

  await pay(paid.address, tokens(2));
  await pay(late.address, tokens(1));
  await chain.mine(2);
  await statusOf(paid.id, (s) => s.status === "paid");
  await pay(reorged.address, tokens(2));
  await chain.mine(2);
  await statusOf(reorged.id, (s) => s.status === "paid");
  await caughtUp();
  await anvilCall(chain.rpcUrl, "anvil_reorg", [3, []]);
  await statusOf(reorged.id, (s) => s.reorged_after_paid);
  await pay(unseen.address, tokens(2));
  await statusOf(unseen.id, (s) => s.status === "seen");
  await caughtUp();
  await anvilCall(chain.rpcUrl, "anvil_reorg", [1, []]);
  await statusOf(unseen.id, (s) => s.status === "waiting");

  const { json } = await rpc(daemon.privateUrl, {
    jsonrpc: "2.0",
    id: 1,
    method: "cancel_payment",
    params: { id: cancelled.id },
  });
  const afterCancel = Math.max(json.result.cancelled_at, Math.floor(clock.now() / 1000)) + 30;
  await anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [afterCancel]);
  await pay(cancelled.address, tokens(2));

  clock.skewMs += 120_000;
  await statusOf(expired.id, (s) => s.status === "expired");
  await statusOf(late.id, (s) => s.status === "expired");
  await anvilCall(chain.rpcUrl, "evm_setNextBlockTimestamp", [
    Math.max((late as unknown as { expires_at: number }).expires_at, afterCancel) + 60,
  ]);
  await pay(late.address, tokens(1));
  await chain.mine(2);
  await statusOf(late.id, (s) => s.paid_late);
  await statusOf(cancelled.id, (s) => s.paid_late && s.status === "cancelled");

  // Every queued event delivered (after its one failed attempt).
  await waitFor(async () => (await daemon.payments.outbox.list("pending")).length === 0, {
    what: "no pending postback",
  });
  const ids = { paid, expired, late, cancelled, reorged, unseen };
  const queued = Object.fromEntries(
    await Promise.all(
      Object.entries(ids).map(async ([name, p]) => [
        name,
        (await daemon.payments.outbox.byPayment(p.id)).map((e) => e.type),
      ]),
    ),
  );
  return { shop, ids, queued, outbox: daemon.payments.outbox };
}

describe("postbacks to a shop written for the original 0xBTCpay", () => {
  test("without an opt-in it only ever gets payment.paid, once per paid payment, whatever else happens", async () => {
    const { shop, queued, outbox } = await runEveryPath(undefined);
    expect(queued).toEqual({
      paid: ["payment.paid"],
      expired: [],
      late: [],
      cancelled: [],
      reorged: ["payment.paid"],
      unseen: [],
    });
    expect(shop.paidOrders).toEqual(["paid", "reorged"]);
    expect(shop.received.map((r) => JSON.parse(r.body).event)).toEqual(
      Array(4).fill("payment.paid"),
    );
    // Two events, each tried twice under one webhook-id.
    expect([...shop.attempts.values()]).toEqual([2, 2]);
    expect((await outbox.list()).every((e) => e.state === "delivered" && e.attempts === 2)).toBe(
      true,
    );
  });

  test("with an opt-in to every event, each transition's event arrives once, in order per payment", async () => {
    const { shop, ids, queued } = await runEveryPath(EVENT_TYPES);
    expect(queued).toEqual({
      paid: ["payment.seen", "payment.paid"],
      expired: ["payment.expired"],
      late: ["payment.seen", "payment.expired", "payment.paid_late"],
      cancelled: ["payment.cancelled", "payment.paid_late"],
      reorged: ["payment.seen", "payment.paid", "payment.reorged_after_paid"],
      unseen: ["payment.seen"],
    });
    // What the shop accepted (one 200 per webhook-id), per payment in arrival order.
    for (const [name, payment] of Object.entries(ids)) {
      const accepted = shop.delivered
        .map((r) => JSON.parse(r.body))
        .filter((body) => body.id === payment.id)
        .map((body) => body.event);
      expect(accepted, name).toEqual(queued[name]);
    }
    const webhookIds = shop.delivered.map((r) => r.headers["webhook-id"]);
    expect(new Set(webhookIds).size).toBe(webhookIds.length);
    expect([...shop.attempts.values()].every((n) => n === 2)).toBe(true);
  });
});
