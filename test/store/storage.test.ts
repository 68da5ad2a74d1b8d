/**
 * The Storage interface (src/store/storage.ts) as the payment logic relies
 * on it, the same cases on both implementations: SQLite (a temp file with
 * the real migrations) and PostgreSQL (a fresh database per test on a
 * throwaway cluster, test/helpers/postgres.ts). What a transaction keeps
 * together, what a nested one rolls back alone, the derivation counter and
 * order_id under it, every query's rows (the same objects on both), the
 * payment row lock, and the data version the status.json cache keys on.
 * Then what only one backend has: SQLite's write lock held by another
 * process, PostgreSQL's change feed between replicas.
 */
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { createClock } from "../../src/internal/clock.ts";
import { openPostgres } from "../../src/store/postgres/index.ts";
import { createPostgresStorage, type PostgresStorage } from "../../src/store/postgres/storage.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import { createSqliteStorage } from "../../src/store/sqlite/storage.ts";
import type {
  EventRow,
  ExternalChange,
  LifecycleFields,
  NewPaymentRow,
  Storage,
  StoredPayment,
  TransferRow,
} from "../../src/store/storage.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.ts";

const dir = tempDir();
let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(async () => {
  await cluster?.remove();
  dir.cleanup();
});

type TestStorage = Storage & { close(): Promise<void> };

/** Everything opened by the running test, closed after it. */
const opened: TestStorage[] = [];
afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
});

let databases = 0;

type Backend = {
  name: "sqlite" | "postgres";
  /** The error code of a unique violation (an order_id taken). */
  uniqueViolation: string;
  /** A fresh database with the real migrations; `open` opens a storage on it (again for another). */
  fresh(): Promise<{ open(): Promise<TestStorage> }>;
  /** Resolves once `dataVersion` is stable between writes (PostgreSQL: LISTEN is up). */
  settled(storage: TestStorage): Promise<void>;
};

const sqlite: Backend = {
  name: "sqlite",
  uniqueViolation: "SQLITE_CONSTRAINT_UNIQUE",
  async fresh() {
    const path = join(dir.path, `storage-${++databases}.sqlite`);
    return {
      async open() {
        const db = openDatabase({ path });
        const storage = {
          ...createSqliteStorage(db),
          close: async () => {
            db.close();
          },
        };
        opened.push(storage);
        return storage;
      },
    };
  },
  settled: async () => {},
};

const postgres: Backend = {
  name: "postgres",
  uniqueViolation: "23505",
  async fresh() {
    const url = await cluster.createDatabase(`storage_${++databases}`);
    return {
      async open() {
        const db = await openPostgres({ url, max: 10 });
        const storage = createPostgresStorage({
          db,
          url,
          clock: createClock(),
          retryIntervalMs: 100,
        });
        opened.push(storage);
        return storage;
      },
    };
  },
  async settled(storage) {
    await storage.dataVersion();
    await waitFor(() => (storage as PostgresStorage).listening(), { what: "listening" });
  },
};

async function fresh(backend: Backend): Promise<TestStorage> {
  return await (await backend.fresh()).open();
}

function row(index: number, overrides: Partial<NewPaymentRow> = {}): NewPaymentRow {
  return {
    id: `p${String(index).padStart(15, "0")}`,
    amount: "150000000",
    derivation_index: index,
    address: `0x${index.toString(16).padStart(40, "0")}`,
    data: null,
    postback_url: null,
    created_at: 1_800_000_000_000 + index,
    expires_at: 1_800_000_900_000,
    order_id: null,
    description: null,
    return_url: null,
    cancel_url: null,
    postback_events: null,
    networks: null,
    ...overrides,
  };
}

/** The row `insertPayment` stores for `input`: every column, the defaults filled in. */
function stored(input: NewPaymentRow): StoredPayment {
  return {
    ...input,
    seen_at: null,
    paid_at: null,
    tx_hash: null,
    block_number: null,
    paid_amount: "0",
    late_amount: "0",
    paid_late_at: null,
    reorged_after_paid_at: null,
    cancelled_at: null,
    status: "waiting",
    network: null,
    block_network: null,
    wrong_network_amount: "0",
  };
}

/** Allocates the next index and inserts payment `index` with it, in one transaction. */
function create(storage: Storage, index: number, overrides: Partial<NewPaymentRow> = {}) {
  return storage.transaction(async () => {
    const allocated = await storage.payments.allocateIndex();
    return await storage.payments.insertPayment(
      row(index, { derivation_index: allocated, ...overrides }),
    );
  });
}

function lifecycle(overrides: Partial<LifecycleFields>): LifecycleFields {
  return {
    status: "waiting",
    seen_at: null,
    paid_at: null,
    tx_hash: null,
    block_number: null,
    paid_amount: "0",
    late_amount: "0",
    paid_late_at: null,
    reorged_after_paid_at: null,
    network: null,
    block_network: null,
    wrong_network_amount: "0",
    ...overrides,
  };
}

function transfer(paymentId: string, overrides: Partial<TransferRow> = {}): TransferRow {
  return {
    tx_hash: `0x${"ab".repeat(32)}`,
    log_index: 0,
    block_number: 10,
    block_hash: `0x${"10".repeat(32)}`,
    from_address: `0x${"11".repeat(20)}`,
    to_address: `0x${"22".repeat(20)}`,
    // More than 2^64: amounts never pass through a float or an int64.
    value: "123456789012345678901234567890",
    payment_id: paymentId,
    recorded_at: 1_800_000_000_500,
    block_timestamp: 1_800_000_000,
    network: "ethereum",
    ...overrides,
  };
}

const event = (id: string, paymentId: string, at: number) => ({
  id,
  payment_id: paymentId,
  type: "payment.paid",
  url: "https://shop.example/hook",
  created_at: at,
  next_attempt_at: at,
});

/** An event as `insert` stores it: every column, the defaults filled in. */
function storedEvent(input: ReturnType<typeof event>, overrides: Partial<EventRow> = {}): EventRow {
  return {
    ...input,
    state: "pending",
    attempts: 0,
    round_attempts: 0,
    last_status: null,
    last_error: null,
    delivered_at: null,
    payload: null,
    requeued_at: null,
    ...overrides,
  };
}

describe.each([sqlite, postgres])("Storage on $name", (backend) => {
  test("a transaction that throws leaves neither its index nor its payment behind", async () => {
    const storage = await fresh(backend);
    await expect(
      storage.transaction(async () => {
        const index = await storage.payments.allocateIndex();
        await storage.payments.insertPayment(row(index));
        throw new Error("after the insert");
      }),
    ).rejects.toThrow("after the insert");
    expect(await storage.payments.getPayment(row(0).id)).toBeUndefined();
    const created = await create(storage, 0);
    expect(created).toStrictEqual(stored(row(0)));
    expect(await storage.payments.getPayment(row(0).id)).toStrictEqual(stored(row(0)));
    expect(await storage.payments.lockPayment(row(0).id)).toStrictEqual(stored(row(0)));
    expect(await storage.payments.countByStatus()).toEqual({ waiting: 1 });
  });

  test("a batch: consecutive indexes in one counter update, rows inserted at once in the given order; a clash inserts none of them and takes no index", async () => {
    const storage = await fresh(backend);
    await create(storage, 0, { order_id: "taken" });
    const inserted = await storage.transaction(async () => {
      const first = await storage.payments.allocateIndexes(3);
      return storage.payments.insertPayments(
        [0, 1, 2].map((k) => row(first + k, { order_id: k === 1 ? "batch-1" : null })),
      );
    });
    expect(inserted).toStrictEqual([
      stored(row(1)),
      stored(row(2, { order_id: "batch-1" })),
      stored(row(3)),
    ]);
    const byOrder = await storage.payments.getPaymentsByOrderIds(["taken", "batch-1", "none"]);
    expect(byOrder.map((p) => p.derivation_index).sort()).toEqual([0, 2]);
    expect(await storage.payments.getPaymentsByOrderIds([])).toEqual([]);
    await expect(
      storage.transaction(async () => {
        const first = await storage.payments.allocateIndexes(2);
        await storage.payments.insertPayments([row(first), row(first + 1, { order_id: "taken" })]);
      }),
    ).rejects.toMatchObject({ code: backend.uniqueViolation });
    expect(await storage.payments.getPayment(row(4).id)).toBeUndefined();
    expect(await storage.transaction(() => storage.payments.allocateIndex())).toBe(4);
  });

  test("an order_id is taken once: the second insert fails, and its savepoint gives the index back", async () => {
    const storage = await fresh(backend);
    const results = await storage.transaction(async () => {
      const out: Array<number | string> = [];
      for (const [index, orderId] of [
        [0, "order-1"],
        [1, "order-1"],
        [2, "order-2"],
      ] as const) {
        try {
          out.push((await create(storage, index, { order_id: orderId })).derivation_index);
        } catch (error) {
          out.push((error as { code: string }).code);
        }
      }
      return out;
    });
    expect(results).toEqual([0, backend.uniqueViolation, 1]);
    expect((await storage.payments.getPaymentByOrderId("order-1"))?.id).toBe(row(0).id);
    expect((await storage.payments.getPaymentByOrderId("order-2"))?.derivation_index).toBe(1);
    expect(await storage.payments.getPaymentByOrderId("order-3")).toBeUndefined();
    expect(await storage.transaction(() => storage.payments.allocateIndex())).toBe(2);
  });

  test("a nested transaction that fails rolls back alone; the outer one commits the rest", async () => {
    const storage = await fresh(backend);
    await storage.transaction(async () => {
      await create(storage, 0);
      await expect(
        storage.transaction(async () => {
          await create(storage, 1);
          await storage.payments.setCancelled({ id: row(0).id, now: 7 });
          throw new Error("inner");
        }),
      ).rejects.toThrow("inner");
      await create(storage, 2);
    });
    expect(await storage.payments.getPayment(row(1).id)).toBeUndefined();
    expect(await storage.payments.getPayment(row(0).id)).toStrictEqual(stored(row(0)));
    // Payment 1's index went back with its savepoint: payment 2 took it.
    expect((await storage.payments.getPayment(row(2).id))?.derivation_index).toBe(1);
  });

  test("50 transactions at once each take a different index, 0 to 49", async () => {
    const storage = await fresh(backend);
    const created = await Promise.all(
      Array.from({ length: 50 }, (_, i) => create(storage, 100 + i)),
    );
    expect(created.map((p) => p.derivation_index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
    expect(await storage.payments.countByStatus()).toEqual({ waiting: 50 });
  });

  test("lockPayment: a second transaction locking the same payment waits for the first to commit, and reads what it wrote", async () => {
    const storage = await fresh(backend);
    await create(storage, 0);
    const id = row(0).id;
    const order: string[] = [];
    let releaseFirst = () => {};
    const gate = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    let firstLocked = () => {};
    const locked = new Promise<void>((resolve) => {
      firstLocked = resolve;
    });
    const first = storage.transaction(async () => {
      await storage.payments.lockPayment(id);
      order.push("first locked");
      firstLocked();
      await gate;
      await storage.payments.setCancelled({ id, now: 5 });
      order.push("first wrote");
    });
    await locked;
    const second = storage.transaction(async () => {
      const payment = await storage.payments.lockPayment(id);
      order.push("second locked");
      return payment?.cancelled_at;
    });
    // Room for the second to go ahead if it could (it must not).
    await new Promise((resolve) => setTimeout(resolve, 100));
    order.push("first released");
    releaseFirst();
    const [, seen] = await Promise.all([first, second]);
    expect(order).toEqual(["first locked", "first released", "first wrote", "second locked"]);
    expect(seen).toBe(5);
  });

  test("lockCursor: a batch of a second (deposed) scanner waits for the first's commit and finds the cursor moved (compare-and-set)", async () => {
    const storage = await fresh(backend);
    await storage.payments.setCursor({
      network: "ethereum",
      chain_id: 1,
      token: "0xtoken",
      block_number: 10,
      block_hash: null,
      head_number: 20,
      updated_at: 1,
    });
    let releaseFirst = () => {};
    const gate = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    let firstLocked = () => {};
    const locked = new Promise<void>((resolve) => {
      firstLocked = resolve;
    });
    const first = storage.transaction(async () => {
      const cursor = await storage.payments.lockCursor("ethereum");
      firstLocked();
      await gate;
      await storage.payments.moveCursor("ethereum", {
        block_number: (cursor?.block_number ?? 0) + 5,
        block_hash: null,
        head_number: 20,
        updated_at: 2,
      });
    });
    await locked;
    // The second read the cursor at 10 before it fetched its batch from block 11.
    const second = storage.transaction(async () => {
      const cursor = await storage.payments.lockCursor("ethereum");
      return cursor?.block_number === 10 ? "applied" : `dropped at ${cursor?.block_number}`;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    releaseFirst();
    const [, outcome] = await Promise.all([first, second]);
    expect(outcome).toBe("dropped at 15");
    expect(await storage.payments.lockCursor("nowhere")).toBeUndefined();
  });

  test("payments read back by id, ids, order id, address; cancelling sets cancelled_at once", async () => {
    const storage = await fresh(backend);
    await create(storage, 0, { order_id: "order-0", data: "shop data", networks: '["base"]' });
    await create(storage, 1, { amount: "999999999999999999999999999999" });
    const first = stored(row(0, { order_id: "order-0", data: "shop data", networks: '["base"]' }));
    const second = stored(row(1, { amount: "999999999999999999999999999999" }));
    const many = await storage.payments.getPaymentsMany([row(1).id, row(0).id, "nope000000000000"]);
    expect(many.sort((a, b) => a.derivation_index - b.derivation_index)).toStrictEqual([
      first,
      second,
    ]);
    expect(await storage.payments.getPaymentsMany([])).toEqual([]);
    expect(await storage.payments.getPaymentByOrderId("order-0")).toStrictEqual(first);
    expect(await storage.payments.paymentIdByAddress(row(1).address)).toBe(row(1).id);
    expect(await storage.payments.paymentIdByAddress("0xnobody")).toBeUndefined();
    expect(await storage.payments.paymentWindowByAddress(row(0).address)).toStrictEqual({
      id: row(0).id,
      expires_at: row(0).expires_at,
    });
    expect(await storage.payments.paymentWindowByAddress("0xnobody")).toBeUndefined();
    expect(await storage.payments.lockPayment("nope000000000000")).toBeUndefined();
    await storage.payments.setCancelled({ id: row(0).id, now: 11 });
    await storage.payments.setCancelled({ id: row(0).id, now: 12 });
    expect((await storage.payments.getPayment(row(0).id))?.cancelled_at).toBe(11);
  });

  test("listPayments: newest first, by status, since a time, after a position", async () => {
    const storage = await fresh(backend);
    for (let i = 0; i < 6; i++) await create(storage, i);
    // Two share a created_at: (created_at, id) orders them.
    await create(storage, 6, { created_at: 1_800_000_000_005 });
    await storage.payments.updateLifecycle(row(1).id, lifecycle({ status: "paid", paid_at: 9 }));
    await storage.payments.updateLifecycle(row(4).id, lifecycle({ status: "paid", paid_at: 9 }));
    const ids = (payments: StoredPayment[]) => payments.map((p) => p.id);
    const all = await storage.payments.listPayments({ after: undefined, limit: 10 });
    expect(ids(all)).toEqual([6, 5, 4, 3, 2, 1, 0].map((i) => row(i).id));
    const page = await storage.payments.listPayments({ after: undefined, limit: 3 });
    const last = page.at(-1) as StoredPayment;
    expect(
      ids(
        await storage.payments.listPayments({
          after: { created_at: last.created_at, id: last.id },
          limit: 3,
        }),
      ),
    ).toEqual([3, 2, 1].map((i) => row(i).id));
    expect(
      ids(await storage.payments.listPayments({ after: undefined, limit: 10, status: "paid" })),
    ).toEqual([row(4).id, row(1).id]);
    expect(
      ids(
        await storage.payments.listPayments({
          after: { created_at: row(4).created_at, id: row(4).id },
          limit: 10,
          status: "paid",
        }),
      ),
    ).toEqual([row(1).id]);
    expect(
      ids(
        await storage.payments.listPayments({
          after: undefined,
          limit: 10,
          since: row(4).created_at,
          status: "waiting",
        }),
      ),
    ).toEqual([row(6).id, row(5).id]);
    expect(all[2]).toStrictEqual({ ...stored(row(4)), status: "paid", paid_at: 9 });
  });

  test("countByStatus, the deadlines of open payments, and the confirming ones", async () => {
    const storage = await fresh(backend);
    await create(storage, 0, { expires_at: 3_000 });
    await create(storage, 1, { expires_at: 1_000 });
    await create(storage, 2, { expires_at: 2_000 });
    await create(storage, 3, { expires_at: 500, amount: "100" });
    await create(storage, 4, { expires_at: 4_000, amount: "100" });
    await create(storage, 5, { amount: "100" });
    // 1 is seen (still open); 3 is paid (closed); 4 and 5 have received their amount.
    await storage.payments.updateLifecycle(row(1).id, lifecycle({ status: "seen", seen_at: 1 }));
    await storage.payments.updateLifecycle(
      row(3).id,
      lifecycle({ status: "paid", paid_at: 1, paid_amount: "100" }),
    );
    await storage.payments.updateLifecycle(
      row(4).id,
      // More than int64 holds: compared as numbers, not text ("9" > "10000…" as text).
      lifecycle({ status: "seen", seen_at: 1, paid_amount: "10000000000000000000000" }),
    );
    await storage.payments.updateLifecycle(
      row(5).id,
      lifecycle({ status: "expired", paid_amount: "99" }),
    );
    expect(await storage.payments.countByStatus()).toEqual({
      waiting: 2,
      seen: 2,
      paid: 1,
      expired: 1,
    });
    const due = await storage.payments.dueDeadlines(2_000);
    expect(due.map((p) => p.id)).toEqual([row(1).id, row(2).id]);
    expect(due[0]).toStrictEqual({
      ...stored(row(1, { expires_at: 1_000 })),
      status: "seen",
      seen_at: 1,
    });
    expect(await storage.payments.nextDeadline(2_000)).toBe(3_000);
    expect(await storage.payments.nextDeadline(4_000)).toBeUndefined();
    expect(await storage.payments.confirmingPaymentIds()).toEqual([row(4).id]);
    await storage.payments.updateLifecycle(
      row(5).id,
      lifecycle({ status: "expired", paid_amount: "100" }),
    );
    expect((await storage.payments.confirmingPaymentIds()).sort()).toEqual([row(4).id, row(5).id]);
  });

  test("due deadlines a page at a time: by (expires_at, id), each page after the last one's position, ties included", async () => {
    const storage = await fresh(backend);
    // Seven open payments, four sharing one deadline (a bulk import), one closed, one not due.
    for (const [i, expires_at] of [
      [0, 1_000],
      [1, 500],
      [2, 1_000],
      [3, 1_000],
      [4, 1_000],
      [5, 700],
      [6, 2_000],
      [7, 9_000],
    ] as const) {
      await create(storage, i, { expires_at });
    }
    await storage.payments.updateLifecycle(row(6).id, lifecycle({ status: "expired" }));
    const all = (await storage.payments.dueDeadlines(5_000)).map((p) => p.id);
    const tied = [row(0).id, row(2).id, row(3).id, row(4).id].sort();
    expect(all).toEqual([row(1).id, row(5).id, ...tied]);
    const pages: string[][] = [];
    let after: { expires_at: number; id: string } | undefined;
    for (;;) {
      const page = await storage.payments.dueDeadlines(5_000, { limit: 2, after });
      if (page.length === 0) break;
      pages.push(page.map((p) => p.id));
      const last = page.at(-1) as StoredPayment;
      after = { expires_at: last.expires_at, id: last.id };
    }
    expect(pages).toEqual([
      [row(1).id, row(5).id],
      [tied[0], tied[1]],
      [tied[2], tied[3]],
    ]);
    // A payment that stays open (still confirming) is passed over by the next page.
    expect(
      (
        await storage.payments.dueDeadlines(5_000, {
          limit: 10,
          after: { expires_at: 1_000, id: tied[1] as string },
        })
      ).map((p) => p.id),
    ).toEqual([tied[2], tied[3]]);
  });

  test("a transfer is recorded once; transfers read back in chain order, by payment", async () => {
    const storage = await fresh(backend);
    await create(storage, 0);
    await create(storage, 1);
    const a = transfer(row(0).id, { block_number: 12, log_index: 3 });
    const b = transfer(row(0).id, { block_number: 11, tx_hash: `0x${"cd".repeat(32)}` });
    const c = transfer(row(1).id, { block_number: 11, log_index: 1, block_timestamp: null });
    // The same (tx_hash, log_index) on another network is another transfer.
    const d = { ...a, network: "base", payment_id: row(1).id, block_number: 13 };
    expect(await storage.payments.insertTransfer(a)).toBe(true);
    expect(await storage.payments.insertTransfer({ ...a, value: "1" })).toBe(false);
    expect(await storage.payments.insertTransfer(d)).toBe(true);
    expect(await storage.payments.insertTransfer(b)).toBe(true);
    expect(await storage.payments.insertTransfer(c)).toBe(true);
    expect(await storage.payments.transfersOf(row(0).id)).toStrictEqual([b, a]);
    expect(await storage.payments.transfersOf("nope000000000000")).toEqual([]);
    const many = await storage.payments.transfersOfMany([row(1).id, row(0).id]);
    expect(many).toBeInstanceOf(Map);
    expect(many.get(row(0).id)).toStrictEqual([b, a]);
    expect(many.get(row(1).id)).toStrictEqual([c, d]);
    expect(await storage.payments.transfersOfMany([])).toEqual(new Map());
  });

  test("forgetAbove drops a network's transfers and blocks above a number, and names their payments", async () => {
    const storage = await fresh(backend);
    for (let i = 0; i < 3; i++) await create(storage, i);
    for (const number of [10, 11, 12]) {
      const block = {
        number,
        hash: `0x${number}`,
        parent_hash: `0x${number - 1}`,
        timestamp: number,
      };
      await storage.payments.rememberBlock("ethereum", block);
      await storage.payments.rememberBlock("base", block);
    }
    // Remembering a block again replaces it (a reorg's new header).
    await storage.payments.rememberBlock("ethereum", {
      number: 12,
      hash: "0x12b",
      parent_hash: "0x11",
      timestamp: 12,
    });
    expect(await storage.payments.blockHash("ethereum", 12)).toBe("0x12b");
    await storage.payments.insertTransfer(transfer(row(0).id, { block_number: 10 }));
    await storage.payments.insertTransfer(transfer(row(1).id, { block_number: 11, log_index: 1 }));
    await storage.payments.insertTransfer(transfer(row(1).id, { block_number: 12, log_index: 2 }));
    await storage.payments.insertTransfer(transfer(row(2).id, { block_number: 12, log_index: 3 }));
    await storage.payments.insertTransfer(
      transfer(row(0).id, { block_number: 12, log_index: 4, network: "base" }),
    );
    expect((await storage.payments.forgetAbove("ethereum", 10)).sort()).toEqual([
      row(1).id,
      row(2).id,
    ]);
    expect(await storage.payments.forgetAbove("ethereum", 10)).toEqual([]);
    expect(await storage.payments.transfersOf(row(1).id)).toEqual([]);
    expect((await storage.payments.transfersOf(row(0).id)).map((t) => t.network)).toEqual([
      "ethereum",
      "base",
    ]);
    expect(await storage.payments.blockHash("ethereum", 10)).toBe("0x10");
    expect(await storage.payments.blockHash("ethereum", 11)).toBeUndefined();
    expect(await storage.payments.blockHash("base", 12)).toBe("0x12");
    await storage.payments.pruneBlocksBelow("base", 12);
    expect(await storage.payments.blockHash("base", 11)).toBeUndefined();
    expect(await storage.payments.blockHash("base", 12)).toBe("0x12");
  });

  test("cursors: created, moved, heads, oldest first", async () => {
    const storage = await fresh(backend);
    expect(await storage.payments.getCursor("ethereum")).toBeUndefined();
    expect(await storage.payments.cursors()).toEqual([]);
    const cursor = {
      chain_id: 1,
      token: "0xb6ed7644c69416d67b522e20bc294a9a9b405b31",
      block_number: 100,
      block_hash: "0x100",
      head_number: 110,
      updated_at: 1_000,
    };
    // Without a network: the single chain's ("ethereum").
    await storage.payments.setCursor(cursor);
    await storage.payments.setCursor({ ...cursor, block_number: 101, block_hash: null });
    await storage.payments.setCursor({ ...cursor, network: "base", chain_id: 8453 });
    await storage.payments.moveCursor("base", {
      block_number: 105,
      block_hash: "0x105",
      head_number: 120,
      updated_at: 2_000,
    });
    await storage.payments.setHead("ethereum", 130, 3_000);
    const ethereum = {
      id: 1,
      network: "ethereum",
      ...cursor,
      block_number: 101,
      block_hash: null,
      head_number: 130,
      updated_at: 3_000,
    };
    const base = {
      id: 2,
      network: "base",
      ...cursor,
      chain_id: 8453,
      block_number: 105,
      block_hash: "0x105",
      head_number: 120,
      updated_at: 2_000,
    };
    expect(await storage.payments.getCursor("ethereum")).toStrictEqual(ethereum);
    expect(await storage.payments.cursors()).toStrictEqual([ethereum, base]);
    expect(await storage.payments.heads()).toEqual(
      new Map([
        ["ethereum", 130],
        ["base", 120],
      ]),
    );
  });

  test("events: per-payment order, attempts, a stale attempt, requeue, the pending summary", async () => {
    const storage = await fresh(backend);
    await create(storage, 0);
    await create(storage, 1);
    const [p0, p1] = [row(0).id, row(1).id];
    // Written in one transaction with one created_at: insertion order decides.
    await storage.transaction(async () => {
      await storage.events.insert(event("e1", p0, 1_000));
      await storage.events.insert(event("e2", p1, 1_000));
      await storage.events.insert(event("e3", p0, 1_000));
      await storage.events.insert({ ...event("e4", p1, 1_000), next_attempt_at: 900 });
    });
    expect(await storage.events.get("e1")).toStrictEqual(storedEvent(event("e1", p0, 1_000)));
    expect(await storage.events.get("nope")).toBeUndefined();
    expect((await storage.events.pendingHeads(10)).map((e) => e.id)).toEqual(["e1", "e2"]);
    expect((await storage.events.pendingHeads(1)).map((e) => e.id)).toEqual(["e1"]);
    expect((await storage.events.byPayment(p0)).map((e) => e.id)).toEqual(["e1", "e3"]);
    expect(await storage.events.pendingSummary()).toEqual({ count: 4, oldestAt: 1_000 });

    await storage.events.setPayload("e1", '{"a":1}');
    await storage.events.setPayload("e1", '{"a":2}');
    const attempt = {
      event_id: "e1",
      attempted_at: 1_100,
      duration_ms: 12,
      status: 200,
      error: null,
    };
    expect(
      await storage.events.recordAttempt(attempt, {
        state: "delivered",
        round_attempts: 0,
        next_attempt_at: 1_100,
        delivered_at: 1_100,
      }),
    ).toBe(true);
    // An attempt that started from another round is recorded, and changes nothing.
    expect(
      await storage.events.recordAttempt(
        { ...attempt, attempted_at: 1_200, status: null, error: "timeout" },
        { state: "failed", round_attempts: 0, next_attempt_at: 1_200, delivered_at: null },
      ),
    ).toBe(false);
    const delivered = storedEvent(event("e1", p0, 1_000), {
      state: "delivered",
      attempts: 1,
      round_attempts: 1,
      next_attempt_at: 1_100,
      last_status: 200,
      delivered_at: 1_100,
      payload: '{"a":1}',
    });
    expect(await storage.events.get("e1")).toStrictEqual(delivered);
    expect(await storage.events.attemptsOf("e1")).toStrictEqual([
      { id: 1, ...attempt },
      { id: 2, ...attempt, attempted_at: 1_200, status: null, error: "timeout" },
    ]);
    expect((await storage.events.pendingHeads(10)).map((e) => e.id)).toEqual(["e2", "e3"]);
    expect((await storage.events.list("delivered")).map((e) => e.id)).toEqual(["e1"]);
    expect((await storage.events.list()).map((e) => e.id)).toEqual(["e1", "e2", "e3", "e4"]);

    await storage.events.requeue(["e1"], 5_000);
    expect(await storage.events.get("e1")).toStrictEqual({
      ...delivered,
      state: "pending",
      round_attempts: 0,
      next_attempt_at: 5_000,
      delivered_at: null,
      requeued_at: 5_000,
    });
    await storage.events.requeue([], 6_000);
    // e1 waits since its requeue (5000), the others since their creation.
    expect(await storage.events.pendingSummary()).toEqual({ count: 4, oldestAt: 1_000 });
    const byPayments = await storage.events.byPayments([p1, p0]);
    expect(byPayments).toBeInstanceOf(Map);
    expect(byPayments.get(p0)?.map((e) => e.id)).toEqual(["e1", "e3"]);
    expect(byPayments.get(p1)?.map((e) => e.id)).toEqual(["e2", "e4"]);
    expect(await storage.events.byPayments([])).toEqual(new Map());
  });

  test("recordAttempt inside a transaction that rolls back leaves no attempt", async () => {
    const storage = await fresh(backend);
    await create(storage, 0);
    await storage.events.insert(event("e1", row(0).id, 1_000));
    await expect(
      storage.transaction(async () => {
        await storage.events.recordAttempt(
          { event_id: "e1", attempted_at: 1, duration_ms: 1, status: 500, error: null },
          { state: "pending", round_attempts: 0, next_attempt_at: 2, delivered_at: null },
        );
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    expect(await storage.events.attemptsOf("e1")).toEqual([]);
    expect((await storage.events.get("e1"))?.attempts).toBe(0);
  });

  test("the data version changes on a write, in or out of a transaction, not on a read", async () => {
    const storage = await fresh(backend);
    await backend.settled(storage);
    const before = await storage.dataVersion();
    await storage.payments.getPayment(row(0).id);
    await storage.transaction(() => storage.payments.getPayment(row(0).id));
    expect(await storage.dataVersion()).toBe(before);
    await create(storage, 0);
    const afterCreate = await storage.dataVersion();
    expect(afterCreate).not.toBe(before);
    expect(await storage.dataVersion()).toBe(afterCreate);
    await storage.payments.setCancelled({ id: row(0).id, now: 1 });
    expect(await storage.dataVersion()).not.toBe(afterCreate);
  });
});

describe("the same writes read back the same on both backends", () => {
  /** Writes a little of everything, and returns everything read back. */
  async function scenario(storage: Storage): Promise<unknown[]> {
    const out: unknown[] = [];
    for (let i = 0; i < 3; i++) out.push(await create(storage, i, { order_id: `o${i}` }));
    await storage.payments.updateLifecycle(
      row(1).id,
      lifecycle({
        status: "paid",
        seen_at: 5,
        paid_at: 6,
        tx_hash: "0xabc",
        block_number: 11,
        paid_amount: "150000000",
        network: "ethereum",
        block_network: "ethereum",
      }),
    );
    await storage.payments.insertTransfer(transfer(row(1).id, { block_number: 11 }));
    await storage.payments.setCursor({
      chain_id: 1,
      token: "0xtoken",
      block_number: 11,
      block_hash: "0x11",
      head_number: 12,
      updated_at: 7,
    });
    await storage.payments.rememberBlock("ethereum", {
      number: 11,
      hash: "0x11",
      parent_hash: "0x10",
      timestamp: 100,
    });
    await storage.events.insert(event("e1", row(1).id, 8));
    await storage.events.recordAttempt(
      { event_id: "e1", attempted_at: 9, duration_ms: 3, status: 503, error: "busy" },
      { state: "pending", round_attempts: 0, next_attempt_at: 20, delivered_at: null },
    );
    out.push(
      await storage.payments.getPayment(row(1).id),
      await storage.payments.getPaymentByOrderId("o2"),
      await storage.payments.listPayments({ after: undefined, limit: 10 }),
      await storage.payments.countByStatus(),
      await storage.payments.dueDeadlines(2_000_000_000_000),
      await storage.payments.nextDeadline(0),
      await storage.payments.transfersOf(row(1).id),
      await storage.payments.transfersOfMany([row(1).id]),
      await storage.payments.cursors(),
      await storage.payments.heads(),
      await storage.payments.blockHash("ethereum", 11),
      await storage.events.list(),
      await storage.events.pendingHeads(10),
      await storage.events.pendingSummary(),
      await storage.events.attemptsOf("e1"),
      await storage.events.byPayments([row(1).id]),
      await storage.payments.forgetAbove("ethereum", 10),
    );
    return out;
  }

  test("every row, Map and missing value is the same object on SQLite and PostgreSQL", async () => {
    const onSqlite = await scenario(await fresh(sqlite));
    const onPostgres = await scenario(await fresh(postgres));
    expect(onPostgres).toStrictEqual(onSqlite);
  });
});

describe("Storage on SQLite only", () => {
  test("the data version changes on a write of another connection (a CLI command)", async () => {
    const database = await sqlite.fresh();
    const storage = await database.open();
    await create(storage, 0);
    const before = await storage.dataVersion();
    const other = await database.open();
    await other.payments.setCancelled({ id: row(0).id, now: 1 });
    expect(await storage.dataVersion()).not.toBe(before);
    expect((await storage.payments.getPayment(row(0).id))?.cancelled_at).toBe(1);
  });

  test("a transaction takes the write lock at its start: another connection cannot write meanwhile", async () => {
    const path = join(dir.path, "immediate.sqlite");
    const first = openDatabase({ path });
    const second = openDatabase({ path });
    second.pragma("busy_timeout = 0");
    const storage = createSqliteStorage(first);
    const other = createSqliteStorage(second);
    try {
      const index = await storage.transaction(async () => {
        // Read only so far, yet the lock is held: the other connection cannot write.
        await storage.payments.getPayment(row(0).id);
        await expect(other.transaction(() => other.payments.allocateIndex())).rejects.toThrow(
          "database is locked",
        );
        return await storage.payments.allocateIndex();
      });
      expect(index).toBe(0);
      expect(await other.transaction(() => other.payments.allocateIndex())).toBe(1);
    } finally {
      first.close();
      second.close();
    }
  });
});

describe("Storage on PostgreSQL only: replicas", () => {
  test("a postback claim is a lease: another replica gets the event only once it has run out, or once the attempt is recorded", async () => {
    const database = await postgres.fresh();
    const a = (await database.open()) as PostgresStorage;
    const b = (await database.open()) as PostgresStorage;
    await create(a, 0);
    await a.events.insert(event("e1", row(0).id, 1_000));
    // Replica a claims it until 40_000 (an attempt's timeout and a margin).
    expect(await a.events.claim("e1", 2_000, 40_000)).toStrictEqual(
      storedEvent(event("e1", row(0).id, 1_000)),
    );
    // Replica b, while the lease lives: not its to send.
    expect(await b.events.claim("e1", 3_000, 41_000)).toBeUndefined();
    expect(await b.events.claim("e1", 39_999, 78_000)).toBeUndefined();
    // a died mid-delivery: once the lease has run out, b takes it over.
    expect((await b.events.claim("e1", 40_000, 78_000))?.id).toBe("e1");
    // b records its attempt (delivered): the claim ends and nobody gets it again.
    await b.events.recordAttempt(
      { event_id: "e1", attempted_at: 40_000, duration_ms: 5, status: 200, error: null },
      { state: "delivered", round_attempts: 0, next_attempt_at: 1_000, delivered_at: 40_005 },
    );
    expect(await a.events.claim("e1", 90_000, 128_000)).toBeUndefined();
    expect((await a.events.get("e1"))?.state).toBe("delivered");
  });

  test("a replica hears another's announce at commit (not its own, not a rollback), and its data version moves on any write", async () => {
    const database = await postgres.fresh();
    const first = (await database.open()) as PostgresStorage;
    const second = (await database.open()) as PostgresStorage;
    const heardBySecond: ExternalChange[] = [];
    const heardByFirst: ExternalChange[] = [];
    second.onExternalChange((change) => heardBySecond.push(change));
    first.onExternalChange((change) => heardByFirst.push(change));
    await postgres.settled(first);
    await postgres.settled(second);
    const before = await second.dataVersion();

    await expect(
      first.transaction(async () => {
        await create(first, 9);
        await first.announce({ ids: [row(9).id], head: false });
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    await first.transaction(async () => {
      await create(first, 0);
      await first.announce({ ids: [row(0).id], head: true });
    });
    await waitFor(() => heardBySecond.length > 0, { what: "the announce" });
    expect(heardBySecond).toEqual([{ ids: [row(0).id], head: true }]);
    const afterAnnounce = await second.dataVersion();
    expect(afterAnnounce).not.toBe(before);
    // It reads what the other committed.
    expect(await second.payments.getPayment(row(0).id)).toStrictEqual(stored(row(0)));

    // A write announced by nobody still moves the others' data version.
    await first.payments.setCancelled({ id: row(0).id, now: 3 });
    await waitFor(async () => (await second.dataVersion()) !== afterAnnounce, {
      what: "the version after an unannounced write",
    });
    expect(heardBySecond).toHaveLength(1);
    // Its own commits are not news to the first replica.
    expect(heardByFirst).toEqual([]);
  });

  test("an announce in a nested transaction that rolls back is not heard; the outer commit still moves the others' version", async () => {
    const database = await postgres.fresh();
    const first = await database.open();
    const second = (await database.open()) as PostgresStorage;
    const heard: ExternalChange[] = [];
    second.onExternalChange((change) => heard.push(change));
    await postgres.settled(second);
    await create(first, 0);
    await waitFor(async () => (await second.payments.getPayment(row(0).id)) !== undefined);
    const before = await second.dataVersion();
    await first.transaction(async () => {
      await first.payments.setCancelled({ id: row(0).id, now: 4 });
      await expect(
        first.transaction(async () => {
          await first.announce({ ids: [row(0).id], head: false });
          throw new Error("inner");
        }),
      ).rejects.toThrow("inner");
    });
    await waitFor(async () => (await second.dataVersion()) !== before, {
      what: "the version after the outer commit",
    });
    expect(heard).toEqual([]);
  });

  test("after losing its LISTEN connection a replica reconnects, says anything may have changed, and meanwhile caches nothing", async () => {
    const database = await postgres.fresh();
    const storage = (await database.open()) as PostgresStorage;
    const heard: ExternalChange[] = [];
    storage.onExternalChange((change) => heard.push(change));
    await postgres.settled(storage);
    const before = await storage.dataVersion();
    const admin = new pg.Client({ connectionString: cluster.adminUrl });
    await admin.connect();
    try {
      await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()",
      );
    } finally {
      await admin.end();
    }
    await waitFor(() => heard.length > 0, { what: "the reconnect" });
    expect(heard).toEqual([{ ids: [], head: true }]);
    expect(storage.listening()).toBe(true);
    expect(await storage.dataVersion()).not.toBe(before);
  });

  test("while not listening, every data version is new", async () => {
    const database = await postgres.fresh();
    const storage = (await database.open()) as PostgresStorage;
    expect(storage.listening()).toBe(false);
    const versions = [await storage.dataVersion(), await storage.dataVersion()];
    expect(storage.listening()).toBe(false);
    expect(versions[0]).not.toBe(versions[1]);
  });
});
