/**
 * The Storage interface (src/store/storage.ts) as the payment logic relies
 * on it, on the SQLite implementation: what a transaction keeps together,
 * what a nested one rolls back alone (group commit), the derivation counter
 * and order_id under it, and the data version the status.json cache keys on.
 */
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { openDatabase } from "../src/store/index.ts";
import type { NewPaymentRow } from "../src/store/payments.ts";
import { createSqliteStorage } from "../src/store/storage.ts";
import { tempDir } from "./helpers/index.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

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

describe("Storage on SQLite", () => {
  test("a transaction that throws leaves neither its index nor its payment behind", () => {
    const storage = createSqliteStorage(openDatabase({ path: ":memory:" }));
    const failing = storage.transaction(() => {
      const index = storage.payments.allocateIndex();
      storage.payments.insertPayment(row(index));
      throw new Error("after the insert");
    });
    expect(() => failing()).toThrow("after the insert");
    const create = storage.transaction(() => {
      const index = storage.payments.allocateIndex();
      return storage.payments.insertPayment(row(index));
    });
    const created = create();
    expect(created.derivation_index).toBe(0);
    expect(created.status).toBe("waiting");
    expect(created.paid_amount).toBe("0");
    expect(storage.payments.countByStatus()).toEqual({ waiting: 1 });
  });

  test("a nested transaction that fails rolls back alone; the outer one commits the rest", () => {
    const storage = createSqliteStorage(openDatabase({ path: ":memory:" }));
    const insertOne = storage.transaction((orderId: string) => {
      const index = storage.payments.allocateIndex();
      return storage.payments.insertPayment(row(index, { order_id: orderId }));
    });
    const insertAll = storage.transaction((orderIds: string[]) =>
      orderIds.map((orderId) => {
        try {
          return insertOne(orderId).derivation_index;
        } catch (error) {
          return (error as { code?: string }).code;
        }
      }),
    );
    expect(insertAll(["order-1", "order-1", "order-2"])).toEqual([
      0,
      "SQLITE_CONSTRAINT_UNIQUE",
      1,
    ]);
    expect(storage.payments.getPaymentByOrderId("order-1")?.derivation_index).toBe(0);
    expect(storage.payments.getPaymentByOrderId("order-2")?.derivation_index).toBe(1);
    // The failed insert's index went back with its savepoint: the counter says 2.
    expect(storage.transaction(() => storage.payments.allocateIndex())()).toBe(2);
  });

  test("the data version changes on a write of this connection or of another, not on a read", () => {
    const path = join(dir.path, "version.sqlite");
    const storage = createSqliteStorage(openDatabase({ path }));
    const before = storage.dataVersion();
    storage.payments.getPayment("p000000000000000");
    expect(storage.dataVersion()).toBe(before);
    storage.transaction(() => storage.payments.insertPayment(row(0)))();
    const afterOwn = storage.dataVersion();
    expect(afterOwn).not.toBe(before);
    // Another connection (a CLI command) writes: this one sees a new version.
    const other = createSqliteStorage(openDatabase({ path }));
    other.transaction(() => other.payments.setCancelled({ id: row(0).id, now: 1 }))();
    expect(storage.dataVersion()).not.toBe(afterOwn);
    expect(storage.payments.getPayment(row(0).id)?.cancelled_at).toBe(1);
  });

  test("immediate takes the write lock at the start: a second writer waits out its busy timeout", () => {
    const path = join(dir.path, "immediate.sqlite");
    const first = openDatabase({ path });
    const second = openDatabase({ path });
    second.pragma("busy_timeout = 0");
    const storage = createSqliteStorage(first);
    const other = createSqliteStorage(second);
    const blocked = storage.transaction(() => {
      // Read only so far, yet the lock is held: the other connection cannot write.
      storage.payments.getPayment(row(0).id);
      expect(() => other.transaction(() => other.payments.allocateIndex())()).toThrow(
        "database is locked",
      );
      return storage.payments.allocateIndex();
    });
    expect(blocked.immediate()).toBe(0);
    expect(other.transaction(() => other.payments.allocateIndex())()).toBe(1);
  });
});
