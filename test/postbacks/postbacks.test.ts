/**
 * The postback sender against real receivers on 127.0.0.1, a real SQLite
 * file with the real migrations, and the real payment logic (payments are
 * made paid through the chain sink, as the watcher does, without a chain).
 */
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { afterEach, describe, expect, test } from "vitest";
import { createAddressDeriver } from "../../src/addresses/index.ts";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { createClock } from "../../src/internal/clock.ts";
import { createLogger } from "../../src/internal/logger.ts";
import { createPayments } from "../../src/payments/index.ts";
import { createPostbackSender, sign } from "../../src/postbacks/index.ts";
import { createTargetGuard, type Resolver } from "../../src/postbacks/targets.ts";
import { createEventStore } from "../../src/store/sqlite/events.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import { createSqliteStorage } from "../../src/store/sqlite/storage.ts";
import {
  LOOPBACK_TARGETS,
  manualClock,
  type ReceivedRequest,
  type ReceiverAnswer,
  silentLogger,
  startReceiver,
  tempDir,
  waitFor,
} from "../helpers/index.ts";

const SECRET = `whsec_${Buffer.alloc(32, 0x5a).toString("base64")}`;
const OLD_SECRET = `whsec_${Buffer.alloc(32, 0x0f).toString("base64")}`;
const TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function headersOf(request: ReceivedRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers as IncomingHttpHeaders)) {
    if (typeof value === "string") out[name] = value;
  }
  return out;
}

/** Log lines written by a logger, for checks on what is (not) logged. */
function captureLogs() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return { lines, logger: createLogger({ level: "info", destination }) };
}

async function receiver(answer?: (request: ReceivedRequest, index: number) => ReceiverAnswer) {
  let index = 0;
  const r = await startReceiver((request) => (answer ? answer(request, index++) : 200));
  cleanups.push(r.close);
  return r;
}

/**
 * A sender on a real SQLite file, sending through the SSRF guard. By default
 * it runs its loop on the real clock; with `manual`, the clock moves only
 * when the test says and attempts run when the test calls `deliverDue` or
 * `deliverUntil`, so no test waits out a retry delay.
 */
async function setup({
  schedule = [100, 100, 100],
  secrets = [SECRET] as string[],
  allowTargets = LOOPBACK_TARGETS,
  resolve,
  timeoutMs = 10_000,
  logger = silentLogger,
  manual = false,
}: {
  schedule?: number[];
  secrets?: string[];
  allowTargets?: string[];
  resolve?: Resolver;
  timeoutMs?: number;
  logger?: ReturnType<typeof createLogger>;
  manual?: boolean;
} = {}) {
  const dir = tempDir();
  const db = openDatabase({ path: join(dir.path, "postbacks.sqlite") });
  const manualTime = manual ? manualClock() : undefined;
  const clock = manualTime ?? createClock();
  let wake = () => {};
  const payments = await createPayments({
    storage: createSqliteStorage(db),
    deriver: createAddressDeriver({ xpub: DEV_XPUB }),
    clock,
    logger: silentLogger,
    chainId: 31337,
    token: TOKEN,
    decimals: 8,
    requiredConfirmations: 1,
    expiresAfterSeconds: 3600,
    onEvents: () => wake(),
  });
  await payments.sink.initCursor(
    { number: 0, hash: `0x${"0".repeat(64)}`, parentHash: `0x${"f".repeat(64)}`, timestamp: 0 },
    0,
  );
  const guard = createTargetGuard({
    allowTargets,
    connectTimeoutMs: timeoutMs,
    ...(resolve ? { resolve } : {}),
  });
  const sender = createPostbackSender({
    outbox: payments.outbox,
    clock,
    logger,
    decimals: 8,
    timeoutMs,
    secrets,
    retrySchedule: schedule,
    dispatcher: guard.dispatcher,
    idlePollMs: 50,
  });
  wake = () => sender.wake();
  const controller = new AbortController();
  const running = manual ? Promise.resolve() : sender.run(controller.signal);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    controller.abort();
    await running;
    await guard.close();
  };
  cleanups.push(async () => {
    await stop();
    db.close();
    dir.cleanup();
  });

  let block = 0;
  /** A payment with `url` as postback URL, paid by one transfer in a new block. */
  async function paidPayment(url: string) {
    const payment = await payments.create({
      amount: 100_000_000n,
      data: '{"order":1}',
      postbackUrl: url,
    });
    block++;
    const blockHash = `0x${block.toString(16).padStart(64, "0")}`;
    await payments.sink.applyBatch({
      fromBlock: block,
      toBlock: block,
      blocks: [
        {
          number: block,
          hash: blockHash,
          parentHash: `0x${(block - 1).toString(16).padStart(64, "0")}`,
          timestamp: 0,
        },
      ],
      head: block,
      transfers: [
        {
          txHash: `0x${(0xabc000 + block).toString(16).padStart(64, "0")}`,
          logIndex: 0,
          blockNumber: block,
          blockHash,
          from: ANVIL_ACCOUNTS[1].toLowerCase(),
          to: payment.address,
          value: 100_000_000n,
        },
      ],
    });
    const [event] = await payments.outbox.byPayment(payment.id);
    if (!event) throw new Error("no event queued");
    return { payment, event };
  }

  const eventOf = async (id: string) => {
    const event = await payments.outbox.get(id);
    if (!event) throw new Error(`no event ${id}`);
    return event;
  };
  const settled = (id: string, state: "delivered" | "failed") =>
    waitFor(
      async () => {
        const event = await eventOf(id);
        return event.state === state ? event : undefined;
      },
      {
        what: `event ${state}`,
      },
    );
  /** Manual clock: moves it forward by `ms`. */
  function advance(ms: number) {
    if (!manualTime) throw new Error("advance needs await setup({ manual: true })");
    manualTime.advance(ms);
  }
  /** Manual clock: runs the due attempts, moves the clock to the next one due, until `id` is `state`. */
  async function deliverUntil(id: string, state: "delivered" | "failed") {
    if (!manualTime) throw new Error("deliverUntil needs await setup({ manual: true })");
    for (let round = 0; round < 20; round++) {
      await sender.deliverDue();
      const event = await eventOf(id);
      if (event.state === state) return event;
      const [next] = await payments.outbox.pendingHeads(1);
      if (!next) throw new Error(`event ${id} is ${event.state}, not ${state}`);
      manualTime.advance(Math.max(0, next.next_attempt_at - manualTime.now()));
    }
    throw new Error(`event ${id} not ${state} after 20 rounds`);
  }
  return {
    payments,
    sender,
    stop,
    paidPayment,
    eventOf,
    settled,
    deliverUntil,
    advance,
    clock,
    db,
  };
}

describe("postback retries", () => {
  test("500, 500, then 200: exactly 3 attempts under one webhook-id, then delivered, all recorded", async () => {
    const shop = await receiver((_, i) => (i < 2 ? 500 : 200));
    const { paidPayment, deliverUntil, payments } = await setup({ manual: true });
    const { event, payment } = await paidPayment(shop.url);
    const delivered = await deliverUntil(event.id, "delivered");

    expect(shop.received).toHaveLength(3);
    expect(shop.received.map((r) => r.headers["webhook-id"])).toEqual([
      event.id,
      event.id,
      event.id,
    ]);
    // Every attempt sends the same bytes, each freshly signed.
    expect(new Set(shop.received.map((r) => r.body)).size).toBe(1);
    expect(delivered).toMatchObject({
      state: "delivered",
      attempts: 3,
      round_attempts: 3,
      last_status: 200,
      last_error: null,
    });
    expect(delivered.delivered_at).toEqual(expect.any(Number));
    expect(
      (await payments.outbox.attemptsOf(event.id)).map(({ status, error }) => ({ status, error })),
    ).toEqual([
      { status: 500, error: "HTTP 500" },
      { status: 500, error: "HTTP 500" },
      { status: 200, error: null },
    ]);
    const body = JSON.parse(shop.received[0]?.body ?? "");
    expect(Object.keys(body)).toEqual([
      "id",
      "data",
      "tx_hash",
      "event",
      "status",
      "amount",
      "paid_amount",
      "address",
      "block_number",
      "confirmations",
      "paid_at",
      "late_amount",
      "paid_late",
      "reorged_after_paid",
    ]);
    expect(body).toMatchObject({
      id: payment.id,
      data: '{"order":1}',
      event: "payment.paid",
      status: "paid",
      amount: "1",
      paid_amount: "1",
      confirmations: 1,
    });
  });

  test("the standardwebhooks library verifies every delivery, and rejects a tampered body, a wrong secret and a 10-minute-old timestamp", async () => {
    const shop = await receiver((_, i) => (i < 1 ? 503 : 200));
    const { paidPayment, settled } = await setup({ secrets: [SECRET, OLD_SECRET] });
    const { event } = await paidPayment(shop.url);
    await settled(event.id, "delivered");
    expect(shop.received).toHaveLength(2);

    for (const request of shop.received) {
      const headers = headersOf(request);
      expect(headers["webhook-timestamp"]).toMatch(/^[0-9]{10}$/);
      expect(Math.abs(Number(headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
      // During a rotation both the new and the old secret verify.
      expect(headers["webhook-signature"]?.split(" ")).toHaveLength(2);
      expect(new Webhook(SECRET).verify(request.body, headers)).toEqual(JSON.parse(request.body));
      expect(new Webhook(OLD_SECRET).verify(request.body, headers)).toEqual(
        JSON.parse(request.body),
      );
    }

    const request = shop.received[1] as ReceivedRequest;
    const headers = headersOf(request);
    const tampered = request.body.replace('"status":"paid"', '"status":"PAID"');
    expect(tampered).not.toBe(request.body);
    expect(() => new Webhook(SECRET).verify(tampered, headers)).toThrow(
      new WebhookVerificationError("No matching signature found"),
    );
    const wrong = `whsec_${Buffer.alloc(32, 0x33).toString("base64")}`;
    expect(() => new Webhook(wrong).verify(request.body, headers)).toThrow(
      new WebhookVerificationError("No matching signature found"),
    );
    const old = Math.floor(Date.now() / 1000) - 600;
    const oldHeaders = {
      ...headers,
      "webhook-timestamp": String(old),
      "webhook-signature": sign({
        id: event.id,
        timestamp: old,
        body: request.body,
        secret: SECRET,
      }),
    };
    expect(() => new Webhook(SECRET).verify(request.body, oldHeaders)).toThrow(
      new WebhookVerificationError("Message timestamp too old"),
    );
  });

  test("410 Gone: failed after one attempt, never retried", async () => {
    const shop = await receiver(() => 410);
    const { paidPayment, settled, payments } = await setup({ schedule: [50, 50, 50] });
    const { event } = await paidPayment(shop.url);
    const failed = await settled(event.id, "failed");
    expect(failed).toMatchObject({ attempts: 1, last_status: 410, last_error: "HTTP 410" });
    expect(await payments.outbox.attemptsOf(event.id)).toHaveLength(1);
    expect(shop.received).toHaveLength(1);
  });

  test("302: a failure, never followed: the redirect target gets no request", async () => {
    const target = await receiver();
    const shop = await receiver(() => ({ status: 302, headers: { location: target.url } }));
    const { paidPayment, deliverUntil } = await setup({ schedule: [50], manual: true });
    const { event } = await paidPayment(shop.url);
    const failed = await deliverUntil(event.id, "failed");
    expect(failed).toMatchObject({
      attempts: 2,
      last_status: 302,
      last_error: "HTTP 302 (redirects are not followed)",
    });
    expect(shop.received).toHaveLength(2);
    expect(target.hits()).toBe(0);
  });

  test("Retry-After: 2 is honoured: the next attempt comes no sooner than 2 s later", async () => {
    const shop = await receiver((_, i) =>
      i === 0 ? { status: 503, headers: { "retry-after": "2" } } : 200,
    );
    const { paidPayment, sender, eventOf, clock, advance } = await setup({
      schedule: [50],
      manual: true,
    });
    const { event } = await paidPayment(shop.url);
    expect(await sender.deliverDue()).toBe(1);
    // The scheduled 50 ms (±20 %) gives way to the 2 s asked for.
    expect(await eventOf(event.id)).toMatchObject({
      state: "pending",
      attempts: 1,
      last_status: 503,
      next_attempt_at: clock.now() + 2000,
    });
    advance(1999);
    expect(await sender.deliverDue()).toBe(0);
    expect(shop.received).toHaveLength(1);
    advance(1);
    expect(await sender.deliverDue()).toBe(1);
    expect(await eventOf(event.id)).toMatchObject({ state: "delivered", attempts: 2 });
    expect(shop.received).toHaveLength(2);
  });

  test("the schedule runs out: failed after 1 + schedule length attempts", async () => {
    const shop = await receiver(() => 500);
    const { paidPayment, deliverUntil } = await setup({ schedule: [20, 20, 20], manual: true });
    const { event } = await paidPayment(shop.url);
    expect(await deliverUntil(event.id, "failed")).toMatchObject({ attempts: 4, last_status: 500 });
    expect(shop.received).toHaveLength(4);
  });

  test("a connection error is a failed attempt that is retried", async () => {
    const closed = await receiver();
    const url = closed.url;
    await closed.close();
    const { paidPayment, payments, deliverUntil } = await setup({ schedule: [20], manual: true });
    const { event } = await paidPayment(url);
    const failed = await deliverUntil(event.id, "failed");
    expect(failed.attempts).toBe(2);
    expect(failed.last_status).toBeNull();
    expect(failed.last_error).toMatch(/^fetch failed: .*ECONNREFUSED/);
    expect(await payments.outbox.attemptsOf(event.id)).toHaveLength(2);
  });
});

describe("ordering and concurrency", () => {
  test("a payment's later event waits for its pending earlier one; its body names its own event type", async () => {
    let failuresLeft = 2;
    const shop = await receiver((request) => {
      if (request.headers["webhook-id"] === first && failuresLeft > 0) {
        failuresLeft--;
        return 500;
      }
      return 200;
    });
    let first: string | undefined;
    const { paidPayment, db, deliverUntil } = await setup({ schedule: [100, 100], manual: true });
    const { event, payment } = await paidPayment(shop.url);
    first = event.id;
    // What the chain-watcher branch does in the transaction that changes state.
    const later = "evt_later000000000000000000";
    createEventStore(db).insert({
      id: later,
      payment_id: payment.id,
      type: "payment.reorged_after_paid",
      url: shop.url,
      created_at: event.created_at,
      next_attempt_at: event.created_at,
    });
    await deliverUntil(later, "delivered");
    expect(shop.received.map((r) => r.headers["webhook-id"])).toEqual([
      event.id,
      event.id,
      event.id,
      later,
    ]);
    expect(JSON.parse(shop.received[3]?.body ?? "").event).toBe("payment.reorged_after_paid");
  });

  test("an endpoint that never answers: the attempt times out after timeoutMs and is retried", async () => {
    const dead = await receiver(() => "hang");
    const { paidPayment, settled, payments } = await setup({ timeoutMs: 200, schedule: [50] });
    const { event } = await paidPayment(dead.url);
    const failed = await settled(event.id, "failed");
    expect(failed).toMatchObject({
      attempts: 2,
      last_status: null,
      last_error: "timeout after 200 ms",
    });
    expect((await payments.outbox.attemptsOf(event.id)).map((a) => a.error)).toEqual([
      "timeout after 200 ms",
      "timeout after 200 ms",
    ]);
    expect(dead.hits()).toBe(2);
  });

  test("a dead endpoint for payment A does not hold up payment B: B is delivered while A's attempt still hangs", async () => {
    const dead = await receiver(() => "hang");
    const shop = await receiver();
    const { paidPayment, settled, eventOf, stop } = await setup({ timeoutMs: 60_000 });
    const a = await paidPayment(dead.url);
    await waitFor(() => dead.hits() === 1, { what: "A's attempt to reach the dead endpoint" });
    const b = await paidPayment(shop.url);
    await settled(b.event.id, "delivered");
    // A's only attempt is still in flight: nothing recorded yet.
    expect(await eventOf(a.event.id)).toMatchObject({ state: "pending", attempts: 0 });
    // Stopping abandons the hanging attempt without recording it: A stays due.
    await stop();
    expect(await eventOf(a.event.id)).toMatchObject({ state: "pending", attempts: 0 });
  });
});

describe("SSRF at delivery time", () => {
  test("rebinding: a name that resolved to a public address at start_payment but to 127.0.0.1 at delivery is refused before connecting", async () => {
    const shop = await receiver();
    const answers = [["93.184.215.14"], ["127.0.0.1"]];
    const calls: string[] = [];
    const resolve: Resolver = async (hostname) => {
      calls.push(hostname);
      const addresses = answers.shift() ?? ["127.0.0.1"];
      return addresses.map((address) => ({ address, family: 4 }));
    };
    const { paidPayment, settled } = await setup({ allowTargets: [], resolve, schedule: [] });
    const url = `http://rebind.test:${shop.port}/payment_complete`;
    // What start_payment sees (no connection is made by a check).
    const guard = createTargetGuard({ resolve });
    cleanups.push(() => guard.close());
    expect(await guard.checkUrl(url)).toEqual({ allowed: true });

    const { event } = await paidPayment(url);
    const failed = await settled(event.id, "failed");
    expect(failed).toMatchObject({
      attempts: 1,
      last_status: null,
      last_error: "target not allowed: rebind.test resolves to 127.0.0.1 (loopback)",
    });
    expect(calls).toEqual(["rebind.test", "rebind.test"]);
    expect(shop.hits()).toBe(0);
  });

  test("a raw IP in the URL is checked too, in every spelling", async () => {
    const shop = await receiver();
    const { paidPayment, settled } = await setup({ allowTargets: [], schedule: [] });
    for (const host of ["127.0.0.1", "0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]"]) {
      const { event } = await paidPayment(`http://${host}:${shop.port}/payment_complete`);
      const failed = await settled(event.id, "failed");
      expect(failed.last_error, host).toMatch(
        /^target not allowed: (127\.0\.0\.1|::ffff:7f00:1) \(/,
      );
    }
    expect(shop.hits()).toBe(0);
  });

  test("a name resolving to an allowed loopback target is delivered to the checked address", async () => {
    const shop = await receiver();
    const resolve: Resolver = async () => [{ address: "127.0.0.1", family: 4 }];
    const { paidPayment, settled } = await setup({ resolve });
    const { event } = await paidPayment(`http://shop.test:${shop.port}/payment_complete`);
    await settled(event.id, "delivered");
    expect(shop.received[0]?.headers.host).toBe(`shop.test:${shop.port}`);
  });
});

describe("redelivery and signing", () => {
  test("resend re-queues a delivered and a failed event with a fresh schedule and the same webhook-id and body", async () => {
    let gone = true;
    const shop = await receiver((request) => (gone && request.url.endsWith("/gone") ? 410 : 200));
    const { paidPayment, settled, sender, eventOf } = await setup();
    const ok = await paidPayment(shop.url);
    const bad = await paidPayment(shop.url.replace("/payment_complete", "/gone"));
    await settled(ok.event.id, "delivered");
    await settled(bad.event.id, "failed");

    expect(await sender.resend(ok.event.id)).toEqual([ok.event.id]);
    gone = false;
    expect(await sender.resend(bad.payment.id)).toEqual([bad.event.id]);
    expect(await sender.resend("nope")).toEqual([]);
    expect(await settled(ok.event.id, "delivered")).toMatchObject({
      attempts: 2,
      round_attempts: 1,
    });
    expect(await settled(bad.event.id, "delivered")).toMatchObject({
      attempts: 2,
      round_attempts: 1,
      last_status: 200,
    });
    const ofEvent = (id: string) => shop.received.filter((r) => r.headers["webhook-id"] === id);
    expect(ofEvent(ok.event.id)).toHaveLength(2);
    expect(ofEvent(bad.event.id)).toHaveLength(2);
    for (const id of [ok.event.id, bad.event.id]) {
      const [first, again] = ofEvent(id);
      expect(again?.body).toBe(first?.body);
      expect(
        new Webhook(SECRET).verify(again?.body ?? "", headersOf(again as ReceivedRequest)),
      ).toBeTruthy();
    }
    expect((await eventOf(ok.event.id)).requeued_at).toEqual(expect.any(Number));
  });

  test("without a secret postbacks go unsigned and one warning is logged; with one, the secret is never logged", async () => {
    const shop = await receiver();
    const unsigned = captureLogs();
    const plain = await setup({ secrets: [], logger: unsigned.logger });
    const first = await plain.paidPayment(shop.url);
    const second = await plain.paidPayment(shop.url);
    await plain.settled(first.event.id, "delivered");
    await plain.settled(second.event.id, "delivered");
    for (const request of shop.received) {
      expect(request.headers["webhook-id"]).toMatch(/^evt_[0-9a-f]{24}$/);
      expect(request.headers["webhook-timestamp"]).toMatch(/^[0-9]{10}$/);
      expect(request.headers["webhook-signature"]).toBeUndefined();
    }
    expect(unsigned.lines.filter((line) => line.includes("NOT signed"))).toHaveLength(1);

    const signed = captureLogs();
    const withSecret = await setup({ secrets: [SECRET, OLD_SECRET], logger: signed.logger });
    const third = await withSecret.paidPayment(shop.url);
    await withSecret.settled(third.event.id, "delivered");
    expect(signed.lines.some((line) => line.includes("postback delivered"))).toBe(true);
    const text = signed.lines.join("\n");
    for (const secret of [SECRET, OLD_SECRET]) expect(text).not.toContain(secret.slice(6, 20));
    expect(text).not.toContain("NOT signed");
  });
});
