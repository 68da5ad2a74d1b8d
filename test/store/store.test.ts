import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, test } from "vitest";
import { listMigrations, migrate, openDatabase } from "../../src/store/sqlite/index.ts";
import { tempDir } from "../helpers/index.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

describe("store", () => {
  test("every open sets WAL, synchronous=FULL, foreign keys and a busy timeout", async () => {
    const path = join(dir.path, "pragmas.sqlite");
    for (let i = 0; i < 2; i++) {
      const db = openDatabase({ path });
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(db.pragma("synchronous", { simple: true })).toBe(2); // FULL
      expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
      expect(db.pragma("busy_timeout", { simple: true })).toBe(5000);
      db.close();
    }
    // Why it must be set on every open: a plain reopen of a WAL database comes
    // back at NORMAL (1) with this build of better-sqlite3.
    const plain = new Database(path);
    expect(plain.pragma("synchronous", { simple: true })).toBe(1);
    plain.close();
  });

  test("migrations are numbered, applied once, and recorded", async () => {
    const migrations = listMigrations();
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
    const path = join(dir.path, "migrations.sqlite");
    openDatabase({ path }).close();
    const db = openDatabase({ path });
    const rows = db.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all();
    expect(rows).toEqual(migrations.map((m) => ({ version: m.version, name: m.name })));
    db.close();
  });

  test("payments enforce unique derivation index and address", async () => {
    const db = openDatabase({ path: ":memory:" });
    const insert = db.prepare(
      "INSERT INTO payments (id, amount, derivation_index, address, created_at, expires_at) VALUES (?, '1', ?, ?, 0, 0)",
    );
    insert.run("0000000000000001", 0, "0xa");
    expect(() => insert.run("0000000000000002", 0, "0xb")).toThrow(
      /UNIQUE constraint failed: payments.derivation_index/,
    );
    expect(() => insert.run("0000000000000003", 1, "0xa")).toThrow(
      /UNIQUE constraint failed: payments.address/,
    );
    expect(() => insert.run("short", 2, "0xc")).toThrow(/CHECK constraint failed/);
  });

  test("transfers are unique on (tx_hash, log_index)", async () => {
    const db = openDatabase({ path: ":memory:" });
    db.prepare(
      "INSERT INTO payments (id, amount, derivation_index, address, created_at, expires_at) VALUES ('0000000000000001', '1', 0, '0xa', 0, 0)",
    ).run();
    const insert = db.prepare(
      "INSERT OR IGNORE INTO transfers (tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id, recorded_at) VALUES ('0x1', ?, 1, '0xb', '0xf', '0xa', '5', '0000000000000001', 0)",
    );
    expect(insert.run(0).changes).toBe(1);
    expect(insert.run(0).changes).toBe(0);
    expect(insert.run(1).changes).toBe(1);
  });
});

describe("migration 0005 (the stored lifecycle)", () => {
  test("rows written before it get their status by the lifecycle's rule, past deadlines included, with no event", async () => {
    const db = new Database(":memory:");
    migrate(
      db,
      listMigrations().filter((m) => m.version <= 4),
    );
    const now = Date.now();
    const insert = db.prepare(`INSERT INTO payments
      (id, amount, derivation_index, address, postback_url, created_at, expires_at, seen_at, paid_at, paid_amount, late_amount, cancelled_at)
      VALUES (@id, @amount, @index, @address, 'https://shop.example/pb', @created, @expires, @seen, @paid, @paid_amount, @late_amount, @cancelled)`);
    const rows = {
      paid: {
        seen: now - 9,
        paid: now - 5,
        paid_amount: "10",
        late_amount: "0",
        expires: now - 1,
        cancelled: null,
      },
      cancelled: {
        seen: null,
        paid: null,
        paid_amount: "0",
        late_amount: "0",
        expires: now + 1e6,
        cancelled: now - 1,
      },
      expired: {
        seen: null,
        paid: null,
        paid_amount: "0",
        late_amount: "0",
        expires: now - 1000,
        cancelled: null,
      },
      expiredLate: {
        seen: now - 9,
        paid: null,
        paid_amount: "10",
        late_amount: "4",
        expires: now - 1000,
        cancelled: null,
      },
      confirming: {
        seen: now - 9,
        paid: null,
        paid_amount: "10",
        late_amount: "0",
        expires: now - 1000,
        cancelled: null,
      },
      seen: {
        seen: now - 9,
        paid: null,
        paid_amount: "3",
        late_amount: "0",
        expires: now + 1e6,
        cancelled: null,
      },
      waiting: {
        seen: null,
        paid: null,
        paid_amount: "0",
        late_amount: "0",
        expires: now + 1e6,
        cancelled: null,
      },
    };
    Object.entries(rows).forEach(([name, row], index) => {
      insert.run({
        id: name
          .padEnd(16, "0")
          .slice(0, 16)
          .replace(/[^0-9a-f]/g, "a"),
        amount: "10",
        index,
        address: `0x${String(index).padStart(40, "0")}`,
        created: now - 2000,
        ...row,
      });
    });
    migrate(db);
    const statuses = db
      .prepare("SELECT status FROM payments ORDER BY derivation_index")
      .pluck()
      .all();
    expect(statuses).toEqual([
      "paid",
      "cancelled",
      "expired",
      "expired",
      "seen",
      "seen",
      "waiting",
    ]);
    expect(db.prepare("SELECT count(*) FROM events").pluck().get()).toBe(0);
    db.close();
  });
});
