/**
 * The merchant API on the private port: API keys and permissions,
 * start_payment's new params and order_id idempotency, get/list/cancel,
 * batches and notifications. Over real sockets on 127.0.0.1 to the daemon's
 * listener, on a real in-memory SQLite; order_id under concurrency on both
 * backends (a SQLite file, a PostgreSQL database on a throwaway cluster).
 */
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { ScanBatch } from "../../src/chain/types.ts";
import { createAllowlist } from "../../src/internal/allowlist.ts";
import { createLogger } from "../../src/internal/logger.ts";
import type { Payments } from "../../src/payments/index.ts";
import { encodeCursor } from "../../src/payments/list.ts";
import { type ApiKeyEntry, generateApiKey, hashApiKey } from "../../src/rpc/api-keys.ts";
import { createPrivateListener } from "../../src/rpc/index.ts";
import { BACKENDS, useBackends } from "../helpers/backends.ts";
import { manualClock, paymentsWith } from "../helpers/index.ts";
import { appsOn, type Json, listenNode, setupApps } from "../helpers/private-app.ts";

const call = (method: string, params: unknown, id: unknown = 1) => ({
  jsonrpc: "2.0",
  id,
  method,
  params,
});
const start = (params: Record<string, unknown>, id: unknown = 1) =>
  call("start_payment", params, id);
const invalidParams = (reason: string, id: unknown = 1) => ({
  jsonrpc: "2.0",
  error: { code: -32602, message: `Invalid params: ${reason}` },
  id,
});

const PAYER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const backends = useBackends();
let txCounter = 0;

/** Feeds the payment logic one confirmed transfer to `to`, as the chain watcher would. */
async function transfer(payments: Payments, to: string, value: bigint, blockNumber = 100) {
  txCounter++;
  const batch: ScanBatch = {
    fromBlock: blockNumber,
    toBlock: blockNumber,
    blocks: [
      {
        number: blockNumber,
        hash: `0x${"b".repeat(64)}`,
        parentHash: `0x${"a".repeat(64)}`,
        timestamp: 0,
      },
    ],
    head: blockNumber + 10,
    transfers: [
      {
        txHash: `0x${txCounter.toString(16).padStart(64, "0")}`,
        logIndex: 0,
        blockNumber,
        blockHash: `0x${"b".repeat(64)}`,
        from: PAYER,
        to,
        value,
      },
    ],
  } as ScanBatch;
  await payments.sink.applyBatch(batch);
}

describe("start_payment: new optional params", () => {
  test("order_id, description, return_url, cancel_url and expires_in are stored; order_id is echoed", async () => {
    const { call: rpc, payments, clock } = await setupApps();
    const body = await rpc("start_payment", {
      amount: "1.5",
      order_id: "A-1001",
      description: "2 × coffee",
      return_url: "https://shop.example/thanks",
      cancel_url: "https://shop.example/cart",
      expires_in: 900,
    });
    expect(Object.keys(body.result)).toEqual(["id", "amount", "address", "expires_at", "order_id"]);
    expect(body.result).toMatchObject({
      amount: "1.5",
      order_id: "A-1001",
      expires_at: Math.floor(clock.now() / 1000) + 900,
    });
    expect(await payments.get(body.result.id)).toMatchObject({
      order_id: "A-1001",
      description: "2 × coffee",
      return_url: "https://shop.example/thanks",
      cancel_url: "https://shop.example/cart",
      expires_at: clock.now() + 900_000,
    });
  });

  test("without the new params the result has exactly the original fields plus expires_at", async () => {
    const { call: rpc } = await setupApps();
    const body = await rpc("start_payment", { amount: "1", order_id: null, description: null });
    expect(Object.keys(body.result)).toEqual(["id", "amount", "address", "expires_at"]);
  });

  const cases: Array<[string, string, Record<string, unknown>]> = [
    ["an empty order_id", "invalid order_id", { order_id: "" }],
    ["an order_id of 129 characters", "invalid order_id", { order_id: "x".repeat(129) }],
    ["a numeric order_id", "invalid order_id", { order_id: 1001 }],
    ["expires_in under a minute", "invalid expires_in", { expires_in: 59 }],
    ["expires_in over 30 days", "invalid expires_in", { expires_in: 30 * 86_400 + 1 }],
    ["a fractional expires_in", "invalid expires_in", { expires_in: 60.5 }],
    ["expires_in as a string", "invalid expires_in", { expires_in: "600" }],
    ["a description of 1001 characters", "invalid description", { description: "d".repeat(1001) }],
    ["a non-string description", "invalid description", { description: ["x"] }],
    ["an ftp return_url", "invalid return URL", { return_url: "ftp://shop.example/x" }],
    ["a relative cancel_url", "invalid cancel URL", { cancel_url: "/cart" }],
    ["a javascript: return_url", "invalid return URL", { return_url: "javascript:alert(1)" }],
    ["a data: cancel_url", "invalid cancel URL", { cancel_url: "data:text/html,<b>x</b>" }],
    [
      "postback_events with an unknown type",
      "invalid postback_events: expected a non-empty list of distinct event types from payment.seen, payment.paid, payment.expired, payment.cancelled, payment.paid_late, payment.reorged_after_paid",
      { postback_url: "https://shop.example/pb", postback_events: ["payment.refunded"] },
    ],
    [
      "postback_events empty",
      "invalid postback_events: expected a non-empty list of distinct event types from payment.seen, payment.paid, payment.expired, payment.cancelled, payment.paid_late, payment.reorged_after_paid",
      { postback_url: "https://shop.example/pb", postback_events: [] },
    ],
    [
      "postback_events twice the same",
      "invalid postback_events: expected a non-empty list of distinct event types from payment.seen, payment.paid, payment.expired, payment.cancelled, payment.paid_late, payment.reorged_after_paid",
      {
        postback_url: "https://shop.example/pb",
        postback_events: ["payment.paid", "payment.paid"],
      },
    ],
    [
      "postback_events without a postback_url",
      "postback_events needs a postback_url",
      { postback_events: ["payment.paid"] },
    ],
    ["data over 16 KiB", "data too large", { data: "é".repeat(8192) }],
  ];
  test.each(cases)("%s → Invalid params: %s, and no payment", async (_name, reason, extra) => {
    const { post, countPayments, nextIndex } = await setupApps();
    const response = await post(start({ amount: "1", ...extra }, 7));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(invalidParams(reason, 7));
    expect(countPayments()).toBe(0);
    expect(nextIndex()).toBe(0);
  });

  test("an order_id of 128 characters, expires_in at both bounds and data of exactly 16 KiB are accepted", async () => {
    const { call: rpc, payments } = await setupApps();
    // 16,384 bytes of JSON text: the quotes plus 16,382 ASCII characters.
    const data = "x".repeat(16 * 1024 - 2);
    const a = await rpc("start_payment", { amount: "1", order_id: "o".repeat(128), data });
    expect(a.result.order_id).toBe("o".repeat(128));
    expect((await payments.get(a.result.id))?.data).toHaveLength(16 * 1024);
    for (const expires_in of [60, 30 * 86_400]) {
      expect((await rpc("start_payment", { amount: "1", expires_in })).result).toBeDefined();
    }
  });

  test("the original's checks come first: a bad amount wins over a bad order_id", async () => {
    const { call: rpc } = await setupApps();
    expect((await rpc("start_payment", { amount: "x", order_id: "" })).error.message).toBe(
      "Invalid params: invalid amount",
    );
    expect(
      (await rpc("start_payment", { amount: "1", postback_url: "/x", order_id: "" })).error.message,
    ).toBe("Invalid params: invalid postback URL");
  });
});

describe("start_payment: idempotency by order_id", () => {
  test("the same order_id and amount returns the first payment and uses no new derivation index", async () => {
    const { call: rpc, nextIndex, countPayments } = await setupApps();
    const first = await rpc("start_payment", { amount: "1.5", order_id: "A-1" });
    expect(nextIndex()).toBe(1);
    // "1.50" is the same amount in base units.
    const again = await rpc("start_payment", {
      amount: "1.50",
      order_id: "A-1",
      data: { other: true },
      expires_in: 60,
    });
    expect(again).toEqual(first);
    expect(nextIndex()).toBe(1);
    expect(countPayments()).toBe(1);
  });

  test("the same order_id with another amount is refused", async () => {
    const { post, nextIndex, countPayments } = await setupApps();
    await post(start({ amount: "1.5", order_id: "A-1" }));
    const response = await post(start({ amount: "2", order_id: "A-1" }, 9));
    expect(await response.json()).toEqual(
      invalidParams("order_id already used with a different amount", 9),
    );
    expect(nextIndex()).toBe(1);
    expect(countPayments()).toBe(1);
  });

  test("the database refuses a second row with the same order_id", async () => {
    const { db } = await setupApps();
    const insert = db.prepare(
      "INSERT INTO payments (id, amount, derivation_index, address, created_at, expires_at, order_id) VALUES (?, '1', ?, ?, 0, 0, ?)",
    );
    insert.run("0000000000000001", 0, "0xa", "o-1");
    insert.run("0000000000000002", 1, "0xb", null);
    insert.run("0000000000000003", 2, "0xc", null);
    expect(() => insert.run("0000000000000004", 3, "0xd", "o-1")).toThrow(
      /UNIQUE constraint failed: payments.order_id/,
    );
  });
});

describe.each(BACKENDS)("start_payment: order_id under concurrency, on %s", (backend) => {
  /** The ports over payments on a fresh database of `backend`, and SQL on it. */
  async function setup() {
    const database = await backends.fresh(backend);
    const clock = manualClock();
    const payments = await paymentsWith({ storage: await database.storage(), clock });
    const count = async (sql: string) =>
      ((await database.query<{ n: number }>(sql))[0] as { n: number }).n;
    return {
      ...appsOn({ payments, clock }),
      database,
      countPayments: () => count("SELECT count(*) AS n FROM payments"),
      nextIndex: () => count("SELECT value AS n FROM counters WHERE name = 'derivation_index'"),
    };
  }

  test("10 concurrent start_payment calls with one order_id create exactly one payment", async () => {
    const { post, nextIndex, countPayments, database } = await setup();
    const bodies: Json[] = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        post(start({ amount: "3", order_id: "race-1" }, i)).then((r) => r.json()),
      ),
    );
    expect(new Set(bodies.map((b) => b.result.id)).size).toBe(1);
    expect(new Set(bodies.map((b) => b.result.address)).size).toBe(1);
    expect(await countPayments()).toBe(1);
    expect(await nextIndex()).toBe(1);
    expect(await database.query("SELECT order_id, derivation_index FROM payments")).toEqual([
      { order_id: "race-1", derivation_index: 0 },
    ]);
  });

  test("10 concurrent calls over a real socket create exactly one payment", async () => {
    const { listener, nextIndex, countPayments } = await setup();
    const server = await listenNode(listener);
    try {
      const bodies: Json[] = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          fetch(`${server.url}/`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(start({ amount: "3", order_id: "race-2" }, i)),
          }).then((r) => r.json()),
        ),
      );
      expect(new Set(bodies.map((b) => b.result.id)).size).toBe(1);
      expect(bodies.map((b) => b.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(await countPayments()).toBe(1);
      expect(await nextIndex()).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe("get_payment", () => {
  test("by id and by order_id: status.json's fields, then the private ones", async () => {
    const { call: rpc, clock, payments, getStatus } = await setupApps();
    const raw = `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"0.29","order_id":"A-7","description":"tea","return_url":"https://shop.example/ok","cancel_url":"https://shop.example/no","postback_url":"https://shop.example/pb","data": {"b":1, "big":12345678901234567890123}}}`;
    const made = await rpc("start_payment", JSON.parse(raw).params);
    const id = made.result.id as string;
    const byId = await rpc("get_payment", { id });
    const byOrder = await rpc("get_payment", { order_id: "A-7" });
    expect(byOrder).toEqual(byId);
    const status = (await (await getStatus(`/${id}/status.json`)).json()) as Json;
    const now = Math.floor(clock.now() / 1000);
    expect(byId.result).toEqual({
      id,
      ...status,
      created_at: now,
      cancelled_at: null,
      order_id: "A-7",
      description: "tea",
      return_url: "https://shop.example/ok",
      cancel_url: "https://shop.example/no",
      postback_url: "https://shop.example/pb",
      postback_events: null,
      data: { b: 1, big: 1.2345678901234568e22 },
      postbacks: [],
    });
    expect(Object.keys(byId.result).slice(0, 1 + Object.keys(status).length)).toEqual([
      "id",
      ...Object.keys(status),
    ]);
    expect((await payments.get(id))?.order_id).toBe("A-7");
  });

  test("data comes back as the exact JSON that was sent (big numbers, key order, spacing)", async () => {
    const { post } = await setupApps();
    const sent = `{"b":1, "a":12345678901234567890123, "s":"\\u00e9"}`;
    const made = (await (
      await post(
        `{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1","order_id":"raw","data": ${sent} }}`,
      )
    ).json()) as Json;
    const text = await (await post(call("get_payment", { id: made.result.id }))).text();
    expect(text).toContain(`"data":${sent},"postbacks":[]`);
  });

  test("a payment without data has data null; explicit null data is null too", async () => {
    const { call: rpc } = await setupApps();
    const a = await rpc("start_payment", { amount: "1" });
    const b = await rpc("start_payment", { amount: "1", data: null });
    expect((await rpc("get_payment", { id: a.result.id })).result.data).toBeNull();
    expect((await rpc("get_payment", { id: b.result.id })).result.data).toBeNull();
  });

  test("shows the postback delivery state from the outbox", async () => {
    const { call: rpc, payments, clock } = await setupApps();
    const made = await rpc("start_payment", {
      amount: "1",
      postback_url: "https://shop.example/pb",
    });
    const id = made.result.id as string;
    await transfer(payments, made.result.address, 100_000_000n);
    const [event] = await payments.outbox.byPayment(id);
    expect(event).toBeDefined();
    expect((await rpc("get_payment", { id })).result.postbacks).toEqual([
      {
        event_id: event?.id,
        event: "payment.paid",
        state: "pending",
        attempts: 0,
        last_status: null,
        delivered_at: null,
      },
    ]);
    await payments.outbox.recordAttempt(
      {
        event_id: event?.id as string,
        attempted_at: clock.now(),
        duration_ms: 5,
        status: 500,
        error: null,
      },
      { state: "failed", round_attempts: 0, next_attempt_at: clock.now(), delivered_at: null },
    );
    expect((await rpc("get_payment", { id })).result.postbacks).toMatchObject([
      { state: "failed", attempts: 1, last_status: 500 },
    ]);
  });

  const errors: Array<[string, string, unknown]> = [
    ["no id or order_id", "missing id or order_id", {}],
    ["params as an array", "missing id or order_id", ["0123456789abcdef"]],
    [
      "both id and order_id",
      "give id or order_id, not both",
      { id: "0123456789abcdef", order_id: "x" },
    ],
    ["a malformed id", "invalid id", { id: "0123456789ABCDEF" }],
    ["a numeric id", "invalid id", { id: 5 }],
    ["an unknown id", "payment not found", { id: "0123456789abcdef" }],
    ["an unknown order_id", "payment not found", { order_id: "nope" }],
  ];
  test.each(errors)("%s → Invalid params: %s", async (_name, reason, params) => {
    const { post } = await setupApps();
    expect(await (await post(call("get_payment", params, "g"))).json()).toEqual(
      invalidParams(reason, "g"),
    );
  });
});

describe("list_payments", () => {
  test("2,500 payments paged 1,000 at a time come back each exactly once, newest first, while new ones arrive", async () => {
    const { call: rpc, clock, payments } = await setupApps();
    const created: string[] = [];
    for (let i = 0; i < 2_500; i++) {
      // Many share a millisecond: ties on created_at are broken by id.
      if (i % 7 === 0) clock.advance(1);
      created.push((await payments.create({ amount: 1n, data: null, postbackUrl: null })).id);
    }
    const seen: Json[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const body: Json = await rpc("list_payments", {
        limit: 1000,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...body.result.payments);
      cursor = body.result.next_cursor;
      pages++;
      // New payments between pages are newer than the cursor: they never show up later.
      clock.advance(1);
      await payments.create({ amount: 2n, data: null, postbackUrl: null });
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(2_500);
    expect(new Set(seen.map((p) => p.id))).toEqual(new Set(created));
    const keys = await Promise.all(
      seen.map(async (p) => [(await payments.get(p.id))?.created_at ?? 0, p.id as string] as const),
    );
    for (let i = 1; i < keys.length; i++) {
      const [t0, id0] = keys[i - 1] as readonly [number, string];
      const [t1, id1] = keys[i] as readonly [number, string];
      expect(t0 > t1 || (t0 === t1 && id0 > id1)).toBe(true);
    }
  });

  test("small pages: the default limit is 100, next_cursor is null on the last page", async () => {
    const { call: rpc, payments } = await setupApps();
    for (let i = 0; i < 101; i++)
      await payments.create({ amount: 1n, data: null, postbackUrl: null });
    const first = await rpc("list_payments", {});
    expect(first.result.payments).toHaveLength(100);
    expect(typeof first.result.next_cursor).toBe("string");
    const second = await rpc("list_payments", { cursor: first.result.next_cursor });
    expect(second.result.payments).toHaveLength(1);
    expect(second.result.next_cursor).toBeNull();
    const exact = await rpc("list_payments", { limit: 101 });
    expect(exact.result.payments).toHaveLength(101);
    expect(exact.result.next_cursor).toBeNull();
  });

  test("status and since filter the listing", async () => {
    const { call: rpc, payments, clock } = await setupApps();
    const make = async (amount: bigint, expiresIn?: number) => {
      clock.advance(1);
      return await payments.create({
        amount,
        data: null,
        postbackUrl: null,
        expiresInSeconds: expiresIn,
      });
    };
    const expired = await make(1n, 60);
    clock.advance(2000);
    // Whole seconds: payments from here on were created at or after `since`, `expired` before it.
    const sinceSeconds = Math.floor(clock.now() / 1000);
    const paid = await make(5n);
    const seen = await make(10n);
    const cancelled = await make(1n);
    const waiting = await make(1n);
    clock.advance(1000);
    const later = await make(1n);
    await transfer(payments, paid.address, 5n);
    await transfer(payments, seen.address, 3n);
    await rpc("cancel_payment", { id: cancelled.id });
    clock.advance(61_000);
    await payments.deadlines.sweep();
    const ids = async (params: Record<string, unknown>) =>
      ((await rpc("list_payments", params)).result.payments as Json[]).map((p) => p.id);
    expect(await ids({ status: "paid" })).toEqual([paid.id]);
    expect(await ids({ status: "seen" })).toEqual([seen.id]);
    expect(await ids({ status: "cancelled" })).toEqual([cancelled.id]);
    expect(await ids({ status: "expired" })).toEqual([expired.id]);
    expect(await ids({ status: "waiting" })).toEqual([later.id, waiting.id]);
    expect(await ids({ since: sinceSeconds })).toEqual([
      later.id,
      waiting.id,
      cancelled.id,
      seen.id,
      paid.id,
    ]);
    expect(await ids({ since: sinceSeconds, status: "waiting", limit: 1 })).toEqual([later.id]);
  });

  const errors: Array<[string, string, unknown]> = [
    ["a limit of 0", "invalid limit", { limit: 0 }],
    ["a limit over 1000", "invalid limit", { limit: 1001 }],
    ["a string limit", "invalid limit", { limit: "10" }],
    ["an unknown status", "invalid status", { status: "refunded" }],
    ["a negative since", "invalid since", { since: -1 }],
    ["a garbage cursor", "invalid cursor", { cursor: "not a cursor" }],
    [
      "a cursor of another shape",
      "invalid cursor",
      { cursor: Buffer.from("1.2").toString("base64url") },
    ],
  ];
  test.each(errors)("%s → Invalid params: %s", async (_name, reason, params) => {
    const { post } = await setupApps();
    expect(await (await post(call("list_payments", params))).json()).toEqual(invalidParams(reason));
  });

  test("a cursor is opaque base64url of the position", async () => {
    expect(encodeCursor({ created_at: 1_800_000_000_123, id: "0123456789abcdef" })).toBe(
      Buffer.from("1800000000123.0123456789abcdef").toString("base64url"),
    );
  });
});

describe("cancel_payment", () => {
  test("a waiting payment becomes cancelled, in get_payment and status.json; cancelling again changes nothing", async () => {
    const { call: rpc, getStatus, clock } = await setupApps();
    const made = await rpc("start_payment", { amount: "1" });
    const id = made.result.id as string;
    const cancelled = await rpc("cancel_payment", { id });
    expect(cancelled.result).toMatchObject({
      id,
      status: "cancelled",
      cancelled_at: Math.floor(clock.now() / 1000),
    });
    const status = (await (await getStatus(`/${id}/status.json`)).json()) as Json;
    expect(status.status).toBe("cancelled");
    expect(status).not.toHaveProperty("cancelled_at");
    clock.advance(5_000);
    expect(await rpc("cancel_payment", { id })).toEqual(cancelled);
  });

  test("a later transfer is recorded as received, but the payment stays cancelled and sends no postback", async () => {
    const { call: rpc, payments } = await setupApps();
    const made = await rpc("start_payment", {
      amount: "1",
      postback_url: "https://shop.example/pb",
    });
    await rpc("cancel_payment", { id: made.result.id });
    await transfer(payments, made.result.address, 100_000_000n);
    await payments.sink.applyHead(500);
    const after = await rpc("get_payment", { id: made.result.id });
    expect(after.result).toMatchObject({
      status: "cancelled",
      paid_at: null,
      tx_hash: null,
      paid_amount: "1",
      postbacks: [],
    });
    expect(after.result.seen_at).not.toBeNull();
  });

  test("a paid payment cannot be cancelled", async () => {
    const { post, call: rpc, payments } = await setupApps();
    const made = await rpc("start_payment", { amount: "1" });
    await transfer(payments, made.result.address, 100_000_000n);
    expect((await payments.get(made.result.id))?.paid_at).not.toBeNull();
    expect(await (await post(call("cancel_payment", { id: made.result.id }, 3))).json()).toEqual(
      invalidParams("payment already paid", 3),
    );
    expect((await payments.get(made.result.id))?.cancelled_at).toBeNull();
  });

  test.each([
    [{}, "missing id"],
    [{ id: "xyz" }, "invalid id"],
    [{ id: "0123456789abcdef" }, "payment not found"],
  ])("%j → Invalid params: %s", async (params, reason) => {
    const { post } = await setupApps();
    expect(await (await post(call("cancel_payment", params))).json()).toEqual(
      invalidParams(reason),
    );
  });
});

describe("batches and notifications", () => {
  test("a batch of mixed valid and invalid calls gets per-call results and errors, in order", async () => {
    const { post, countPayments } = await setupApps();
    const response = await post([
      start({ amount: "1", order_id: "b-1" }, "a"),
      start({ amount: "1.123456789" }, "b"),
      call("refund_payment", {}, "c"),
      { jsonrpc: "2.0", method: "start_payment", params: { amount: "2" } }, // notification
      42,
      call("get_payment", { order_id: "b-1" }, "d"),
      { jsonrpc: "2.0", id: "e", method: "start_payment" },
      start({ amount: "1", order_id: "b-1" }, null),
    ]);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Json[];
    expect(body.map((r) => r.id)).toEqual(["a", "b", "c", null, "d", "e", null]);
    expect(body[0].result).toMatchObject({ amount: "1", order_id: "b-1" });
    expect(body[1]).toEqual(invalidParams("invalid amount", "b"));
    expect(body[2]).toEqual({
      jsonrpc: "2.0",
      error: { code: -32601, message: "Method not found" },
      id: "c",
    });
    expect(body[3]).toEqual({
      jsonrpc: "2.0",
      error: { code: -32600, message: "Invalid request" },
      id: null,
    });
    expect(body[4].result).toMatchObject({ id: body[0].result.id, order_id: "b-1" });
    expect(body[5].error).toEqual({ code: -32600, message: "Invalid request" });
    expect(body[6].result.id).toBe(body[0].result.id);
    // b-1 once, plus the notification's payment.
    expect(countPayments()).toBe(2);
  });

  test("each call of a batch keeps its own data byte for byte", async () => {
    const { post, payments } = await setupApps();
    const body = `[{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1","data": {"n": 1.50}}},
      {"jsonrpc":"2.0","id":2,"method":"start_payment","params":{"data":[ 99999999999999999999 ],"amount":"1"}}]`;
    const [a, b] = (await (await post(body)).json()) as Json[];
    expect((await payments.get(a.result.id))?.data).toBe('{"n": 1.50}');
    expect((await payments.get(b.result.id))?.data).toBe("[ 99999999999999999999 ]");
  });

  test("a single notification and an all-notification batch get 204 and no body, and are executed", async () => {
    const { post, countPayments } = await setupApps();
    const note = { jsonrpc: "2.0", method: "start_payment", params: { amount: "1" } };
    const single = await post(note);
    expect(single.status).toBe(204);
    expect(await single.text()).toBe("");
    const batch = await post([note, note, { ...note, method: "nope" }]);
    expect(batch.status).toBe(204);
    expect(await batch.text()).toBe("");
    expect(countPayments()).toBe(3);
  });

  test("an empty batch is one Invalid request; an oversized batch is refused whole", async () => {
    const { post, countPayments } = await setupApps();
    expect(await (await post([])).json()).toEqual({
      jsonrpc: "2.0",
      error: { code: -32600, message: "Invalid request" },
      id: null,
    });
    const big = Array.from({ length: 101 }, (_, i) => start({ amount: "1" }, i));
    expect(await (await post(big)).json()).toEqual({
      jsonrpc: "2.0",
      error: { code: -32600, message: "Invalid request: batch too large" },
      id: null,
    });
    expect(countPayments()).toBe(0);
    expect(((await (await post(big.slice(0, 100))).json()) as Json[]).length).toBe(100);
  });

  test("a batch inside a batch is an invalid call", async () => {
    const { post } = await setupApps();
    expect(await (await post([[start({ amount: "1" })]])).json()).toEqual([
      { jsonrpc: "2.0", error: { code: -32600, message: "Invalid request" }, id: null },
    ]);
  });
});

describe("API keys", () => {
  const shopKey = generateApiKey();
  const readerKey = generateApiKey();
  const scryptKey = generateApiKey();
  const apiKeys: ApiKeyEntry[] = [
    {
      name: "shop",
      hash: hashApiKey(shopKey),
      permissions: ["payments:create", "payments:read", "payments:cancel"],
    },
    { name: "reader", hash: hashApiKey(readerKey), permissions: ["payments:read"] },
    {
      name: "scrypt-shop",
      hash: hashApiKey(scryptKey, "scrypt"),
      permissions: ["payments:create"],
    },
  ];
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  const forbidden = (message: string, id: unknown = null) => ({
    jsonrpc: "2.0",
    error: { code: -32001, message },
    id,
  });

  test("the config entries hold only hashes", async () => {
    const text = JSON.stringify(apiKeys);
    for (const key of [shopKey, readerKey, scryptKey]) expect(text).not.toContain(key.slice(4));
    expect(apiKeys[0]?.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test("no key → 403; wrong key → 403; both create nothing", async () => {
    const { post, countPayments } = await setupApps({ apiKeys });
    const none = await post(start({ amount: "1" }));
    expect(none.status).toBe(403);
    expect(await none.json()).toEqual(forbidden("Forbidden: missing API key"));
    for (const authorization of [
      `Bearer ${generateApiKey()}`,
      `Bearer ${shopKey}x`,
      `Bearer ${"a".repeat(300)}`,
    ]) {
      const wrong = await post(start({ amount: "1" }), { headers: { authorization } });
      expect(wrong.status).toBe(403);
      expect(await wrong.json()).toEqual(forbidden("Forbidden: invalid API key"));
    }
    for (const authorization of [`Basic ${shopKey}`, shopKey, "Bearer"]) {
      const malformed = await post(start({ amount: "1" }), { headers: { authorization } });
      expect(malformed.status).toBe(403);
      expect(await malformed.json()).toEqual(forbidden("Forbidden: missing API key"));
    }
    expect(countPayments()).toBe(0);
  });

  test("a key without payments:cancel calling cancel_payment → 403 naming the permission; the right key cancels", async () => {
    const { post, payments } = await setupApps({ apiKeys });
    const made = (await (
      await post(start({ amount: "1" }), { headers: bearer(shopKey) })
    ).json()) as Json;
    const id = made.result.id as string;
    const refused = await post(call("cancel_payment", { id }, 5), { headers: bearer(readerKey) });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual(
      forbidden("Forbidden: missing permission payments:cancel", 5),
    );
    expect((await payments.get(id))?.cancelled_at).toBeNull();
    const readable = await post(call("get_payment", { id }), { headers: bearer(readerKey) });
    expect(readable.status).toBe(200);
    const ok = await post(call("cancel_payment", { id }), { headers: bearer(shopKey) });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Json).result.status).toBe("cancelled");
  });

  test("the scheme is case-insensitive and a scrypt key works (checked once, then cached)", async () => {
    const { post } = await setupApps({ apiKeys });
    for (let i = 0; i < 2; i++) {
      const response = await post(start({ amount: "1" }), {
        headers: { authorization: `bearer ${scryptKey}` },
      });
      expect(response.status).toBe(200);
    }
    const refused = await post(call("get_payment", { id: "0123456789abcdef" }), {
      headers: bearer(scryptKey),
    });
    expect(await refused.json()).toEqual(
      forbidden("Forbidden: missing permission payments:read", 1),
    );
  });

  test("in a batch, a call without the permission gets its own error and the others run", async () => {
    const { post, countPayments } = await setupApps({ apiKeys });
    const response = await post(
      [
        start({ amount: "1" }, 1),
        call("cancel_payment", { id: "0123456789abcdef" }, 2),
        call("get_payment", { id: "0123456789abcdef" }, 3),
        { jsonrpc: "2.0", method: "cancel_payment", params: { id: "0123456789abcdef" } },
        call("nope", {}, 4),
      ],
      { headers: bearer(scryptKey) },
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as Json[];
    expect(body[0].result.amount).toBe("1");
    expect(body.slice(1)).toEqual([
      forbidden("Forbidden: missing permission payments:cancel", 2),
      forbidden("Forbidden: missing permission payments:read", 3),
      { jsonrpc: "2.0", error: { code: -32601, message: "Method not found" }, id: 4 },
    ]);
    expect(countPayments()).toBe(1);
  });

  test("a single notification without the permission still gets 403", async () => {
    const { post } = await setupApps({ apiKeys });
    const response = await post(
      { jsonrpc: "2.0", method: "cancel_payment", params: { id: "0123456789abcdef" } },
      { headers: bearer(readerKey) },
    );
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual(
      forbidden("Forbidden: missing permission payments:cancel"),
    );
  });

  test("the IP allowlist still applies with a valid key", async () => {
    // Loopback is not exempt here, so 127.0.0.3 is outside the allowlist.
    const { post } = await setupApps({ apiKeys, allow: ["127.0.0.2"], loopback: false });
    const outside = await post(start({ amount: "1" }), {
      from: "127.0.0.3",
      headers: bearer(shopKey),
    });
    expect(outside.status).toBe(403);
    expect(await outside.json()).toEqual(forbidden("Forbidden"));
    const inside = await post(start({ amount: "1" }), {
      from: "127.0.0.2",
      headers: bearer(shopKey),
    });
    expect(inside.status).toBe(200);
  });

  test("without keys configured an Authorization header changes nothing", async () => {
    const { post } = await setupApps();
    const response = await post(start({ amount: "1" }), {
      headers: { authorization: "Bearer whatever" },
    });
    expect(response.status).toBe(200);
  });

  test("neither the key nor the Authorization header reaches the log", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: "trace",
      destination: { write: (line: string) => lines.push(line) } as never,
    });
    const { post } = await setupApps({ apiKeys, logger });
    for (const key of [shopKey, readerKey, `${shopKey}x`]) {
      await post(call("cancel_payment", { id: "0123456789abcdef" }), {
        headers: { authorization: `Bearer ${key}` },
      });
    }
    const text = lines.join("");
    expect(lines.length).toBeGreaterThan(0);
    expect(text).toContain("private port: API key refused");
    expect(text).toContain('"api_key":"reader"');
    expect(text).not.toContain(shopKey.slice(4));
    expect(text).not.toContain(readerKey.slice(4));
  });

  describe("over a real socket", () => {
    let server: Awaited<ReturnType<typeof listenNode>>;
    beforeAll(async () => {
      server = await listenNode((await setupApps({ apiKeys })).listener);
    });
    afterAll(() => server.close());

    test("Authorization: Bearer is read from the wire", async () => {
      const send = (headers: Record<string, string>) =>
        fetch(`${server.url}/`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(start({ amount: "0.5" })),
        });
      expect((await send({})).status).toBe(403);
      const ok = await send(bearer(shopKey));
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as Json).result.amount).toBe("0.5");
    });
  });
});

describe("private port over a real socket (the daemon's node:http listener): bodies", () => {
  let server: Awaited<ReturnType<typeof listenNode>>;
  let apps: Awaited<ReturnType<typeof setupApps>>;
  /** Transfer-Encoding of each request as the server received it. */
  const encodings: Array<string | null> = [];
  beforeAll(async () => {
    apps = await setupApps();
    server = await listenNode((req, res) => {
      encodings.push(req.headers["transfer-encoding"] ?? null);
      apps.listener(req, res);
    });
  });
  afterAll(() => server.close());

  /** POSTs `chunks` with Transfer-Encoding: chunked (no Content-Length), one write per chunk. */
  function streamPost(chunks: string[]): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const request = httpRequest(`${server.url}/`, {
        method: "POST",
        headers: { "content-type": "application/json" },
      });
      request.on("response", (response) => {
        let body = "";
        response.on("data", (chunk) => {
          body += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      });
      // The server may stop reading once the limit is passed; that is the point.
      request.on("error", (error) => {
        if (!request.writableEnded) reject(error);
      });
      (async () => {
        for (const chunk of chunks) {
          if (request.destroyed) return;
          request.write(chunk);
          await new Promise((r) => setImmediate(r));
        }
        request.end();
      })().catch(reject);
    });
  }

  test("a chunked body over 64 KiB is refused with 413 and creates nothing", async () => {
    const before = apps.countPayments();
    const head = '{"jsonrpc":"2.0","id":1,"method":"start_payment","params":{"amount":"1","data":"';
    const chunks = [head, ...Array.from({ length: 9 }, () => "x".repeat(8 * 1024)), '"}}'];
    const { status, body } = await streamPost(chunks);
    expect(encodings.at(-1)).toBe("chunked");
    expect(status).toBe(413);
    expect(JSON.parse(body)).toEqual({
      jsonrpc: "2.0",
      error: { code: -32600, message: "Request too large" },
      id: null,
    });
    expect(apps.countPayments()).toBe(before);
  });

  test("a chunked body under the limit is served", async () => {
    const text = JSON.stringify(start({ amount: "2", data: "y".repeat(10_000) }));
    const chunks = [text.slice(0, 10), text.slice(10, 5000), text.slice(5000)];
    const { status, body } = await streamPost(chunks);
    expect(encodings.at(-1)).toBe("chunked");
    expect(status).toBe(200);
    expect(JSON.parse(body).result.amount).toBe("2");
  });

  test("a Content-Length body over 64 KiB is refused with 413", async () => {
    const response = await fetch(`${server.url}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(start({ amount: "1", data: "z".repeat(70_000) })),
    });
    expect(response.status).toBe(413);
  });

  test("only POST / exists: other methods and paths are 404", async () => {
    for (const [method, path] of [
      ["GET", "/"],
      ["POST", "/rpc"],
      ["PUT", "/"],
    ] as const) {
      const response = await fetch(
        `${server.url}${path}`,
        method === "GET" ? { method } : { method, body: "{}" },
      );
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(await response.json()).toEqual({ error: "not found" });
    }
  });

  test("a query string does not change the route; a UTF-8 byte order mark is ignored", async () => {
    const response = await fetch(`${server.url}/?x=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `\ufeff${JSON.stringify(start({ amount: "4" }))}`,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(((await response.json()) as Json).result.amount).toBe("4");
  });

  test("a batch and a notification over the socket", async () => {
    const batch = await fetch(`${server.url}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([start({ amount: "1" }, 1), call("nope", {}, 2)]),
    });
    const body = (await batch.json()) as Json[];
    expect(body.map((r) => r.id)).toEqual([1, 2]);
    const note = await fetch(`${server.url}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", method: "start_payment", params: { amount: "1" } }),
    });
    expect(note.status).toBe(204);
    expect(await note.text()).toBe("");
  });
});

describe("extra methods", () => {
  test("another module's method joins the registry as one entry, behind its permission", async () => {
    const key = generateApiKey();
    const { post, payments } = await setupApps({
      apiKeys: [{ name: "shop", hash: hashApiKey(key), permissions: ["payments:read"] }],
      extraMethods: [
        {
          name: "resend_postback",
          permission: "postbacks:resend",
          handler: (params) => ({ resent: params.id }),
        },
      ],
    });
    const response = await post(call("resend_postback", { id: "x" }), {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(response.status).toBe(403);
    expect(((await response.json()) as Json).error.message).toBe(
      "Forbidden: missing permission postbacks:resend",
    );
    expect(() =>
      createPrivateListener({
        payments,
        allowlist: createAllowlist({ allow: [] }),
        decimals: 8,
        maxWholeTokens: 20_999_984n,
        logger: createLogger({ level: "silent" }),
        extraMethods: [{ name: "get_payment", permission: "payments:read", handler: () => 1 }],
      }),
    ).toThrow("JSON-RPC method defined twice: get_payment");
  });
});
