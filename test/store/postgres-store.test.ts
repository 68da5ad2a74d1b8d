/**
 * The PostgreSQL backend's storage rules on a real cluster made by the test
 * (test/helpers/postgres.ts): durable settings, migrations applied once
 * even by replicas opening together, the schema-version guard, amounts that
 * never pass through a float, and passwords kept out of messages.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createClock } from "../../src/internal/clock.ts";
import { SchemaTooNewError, SchemaTooOldError } from "../../src/internal/errors.ts";
import { listenForChanges } from "../../src/store/postgres/changes.ts";
import { CopyTargetNotEmptyError, copySqliteToPostgres } from "../../src/store/postgres/copy.ts";
import {
  inTransaction,
  listPostgresMigrations,
  openPostgres,
  type PostgresDb,
  postgresSchemaVersion,
  redactUrl,
} from "../../src/store/postgres/index.ts";
import {
  allocateIndex,
  CHANGES_CHANNEL,
  type ChangeNotice,
  changePayloads,
  claimDueEvents,
  createCursor,
  getCursor,
  getPaymentByOrderId,
  insertEvent,
  insertPayment,
  insertTransfer,
  moveCursor,
  notifyChanged,
  parseChangePayload,
  recordAttempt,
  UNIQUE_VIOLATION,
} from "../../src/store/postgres/queries.ts";
import { createEventStore } from "../../src/store/sqlite/events.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import { createPaymentStore } from "../../src/store/sqlite/payments.ts";
import type { NewPaymentRow } from "../../src/store/storage.ts";
import { waitFor } from "../helpers/index.ts";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.ts";

let cluster: PostgresCluster;
let databases = 0;
/** A fresh empty database on the shared cluster. */
const freshDatabase = () => cluster.createDatabase(`store_${++databases}`);

beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(async () => {
  await cluster?.remove();
});

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("the test cluster", () => {
  test("commits durably and listens on loopback only", async () => {
    const rows = await query<{ name: string; setting: string }>(
      cluster.adminUrl,
      "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'listen_addresses', 'full_page_writes') ORDER BY name",
    );
    expect(rows).toEqual([
      { name: "fsync", setting: "on" },
      { name: "full_page_writes", setting: "on" },
      { name: "listen_addresses", setting: "127.0.0.1" },
      { name: "synchronous_commit", setting: "on" },
    ]);
  });

  test("refuses a wrong password", async () => {
    const url = cluster.adminUrl.replace(cluster.password, "wrong");
    await expect(query(url, "SELECT 1")).rejects.toThrow(
      'password authentication failed for user "postgres"',
    );
  });
});

describe("postgres store", () => {
  test("migrations are numbered from 1, applied once, and recorded", async () => {
    const url = await freshDatabase();
    const migrations = listPostgresMigrations();
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
    for (let i = 0; i < 2; i++) {
      const db = await openPostgres({ url });
      expect(await postgresSchemaVersion(db.pool)).toBe(migrations.length);
      await db.close();
    }
    expect(
      await query(url, "SELECT version, name FROM schema_migrations ORDER BY version"),
    ).toEqual(migrations.map((m) => ({ version: m.version, name: m.name })));
  });

  test("three replicas opening an empty database at once apply each migration once", async () => {
    const url = await freshDatabase();
    const dbs = await Promise.all([1, 2, 3].map(() => openPostgres({ url, max: 2 })));
    await Promise.all(dbs.map((db) => db.close()));
    const rows = await query<{ count: string }>(
      url,
      "SELECT count(*) AS count FROM schema_migrations",
    );
    expect(rows).toEqual([{ count: String(listPostgresMigrations().length) }]);
  });

  test("every open refuses a schema newer than this build's, and adds none of ours", async () => {
    const url = await freshDatabase();
    const newest = listPostgresMigrations().length;
    const first = listPostgresMigrations().slice(0, 1);
    const future = { version: 999, name: "0999_future", sql: "CREATE TABLE future (x INT)" };
    // A database at version 1 plus a future migration: ours after 1 must not be added.
    await (await openPostgres({ url, migrations: [...first, future] })).close();
    const message = `database ${redactUrl(url)} has schema version 999, newer than this 0xbtcpay knows (${newest}): upgrade 0xbtcpay`;
    for (const migrate of [true, false]) {
      const opened = openPostgres({ url, migrate });
      await expect(opened).rejects.toThrow(SchemaTooNewError);
      await expect(opened).rejects.toThrow(message);
    }
    expect(await query(url, "SELECT version FROM schema_migrations ORDER BY version")).toEqual([
      { version: 1 },
      { version: 999 },
    ]);
  });

  test("an open that does not migrate refuses an empty or older schema and changes nothing", async () => {
    const url = await freshDatabase();
    const newest = listPostgresMigrations().length;
    const opened = openPostgres({ url, migrate: false });
    await expect(opened).rejects.toThrow(SchemaTooOldError);
    await expect(opened).rejects.toThrow(
      `database ${redactUrl(url)} has schema version 0, older than this 0xbtcpay needs (${newest}): run \`0xbtcpay serve\` once to upgrade it`,
    );
    expect(await query(url, "SELECT to_regclass('payments') AS t")).toEqual([{ t: null }]);
    await (await openPostgres({ url })).close();
    await (await openPostgres({ url, migrate: false })).close();
  });

  test("the password never appears in the name a message shows", async () => {
    const url = await freshDatabase();
    expect(url).toContain(cluster.password);
    const db = await openPostgres({ url });
    expect(db.name).not.toContain(cluster.password);
    expect(db.name).toBe(
      `postgres://postgres:redacted@127.0.0.1:${cluster.port}/store_${databases}`,
    );
    await db.close();
    expect(redactUrl("not a url with secret")).toBe("postgres://[unparseable url redacted]");
  });

  test("amounts keep every digit (NUMERIC as text) and times are integers", async () => {
    const url = await freshDatabase();
    const db = await openPostgres({ url });
    try {
      const uint256max = (2n ** 256n - 1n).toString();
      await db.pool.query(
        `INSERT INTO payments (id, amount, derivation_index, address, created_at, expires_at, paid_amount)
         VALUES ('abcdefghijklmnop', $1, 0, '0x01', $2, $3, $1)`,
        [uint256max, 1_700_000_000_123, 2 ** 53 - 1],
      );
      const { rows } = await db.pool.query(
        "SELECT amount, paid_amount, created_at, expires_at, late_amount FROM payments",
      );
      expect(rows).toEqual([
        {
          amount: uint256max,
          paid_amount: uint256max,
          created_at: 1_700_000_000_123,
          expires_at: 2 ** 53 - 1,
          late_amount: "0",
        },
      ]);
      expect(BigInt(rows[0].amount)).toBe(2n ** 256n - 1n);
      // A BIGINT a number cannot hold exactly is refused, never rounded.
      await expect(db.pool.query("SELECT (2^53)::bigint + 1 AS x")).rejects.toThrow(
        "bigint column out of range: 9007199254740993",
      );
    } finally {
      await db.close();
    }
  });

  test("every connection commits with synchronous_commit on, whatever the server default", async () => {
    const url = await freshDatabase();
    await query(url, `ALTER DATABASE store_${databases} SET synchronous_commit = off`);
    const db = await openPostgres({ url });
    try {
      const { rows } = await db.pool.query("SHOW synchronous_commit");
      expect(rows).toEqual([{ synchronous_commit: "on" }]);
    } finally {
      await db.close();
    }
  });
});

/** A payment row as start_payment writes it; index and address are the caller's. */
function newPayment(index: number, overrides: Partial<NewPaymentRow> = {}): NewPaymentRow {
  return {
    id: `p${String(index).padStart(15, "0")}`,
    amount: "100000000",
    derivation_index: index,
    address: `0x${index.toString(16).padStart(40, "0")}`,
    data: null,
    postback_url: "http://127.0.0.1:1/hook",
    created_at: 1_700_000_000_000 + index,
    expires_at: 1_700_000_900_000,
    order_id: null,
    description: null,
    return_url: null,
    cancel_url: null,
    postback_events: null,
    networks: null,
    ...overrides,
  };
}

/** Creates a payment in one transaction, its index from the shared counter. */
async function createPayment(db: PostgresDb, overrides: Partial<NewPaymentRow> = {}) {
  return await inTransaction(db.pool, async (client) => {
    const index = await allocateIndex(client);
    return await insertPayment(client, {
      ...newPayment(index, overrides),
      id: overrides.id ?? `r${randomBytes(8).toString("hex").slice(0, 15)}`,
    });
  });
}

describe("postgres store across replicas", () => {
  let url: string;
  let replicas: PostgresDb[];
  beforeAll(async () => {
    url = await freshDatabase();
    replicas = await Promise.all([1, 2, 3].map(() => openPostgres({ url, max: 5 })));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((db) => db.close()));
  });

  test("three replicas creating payments at once take every derivation index once, without gaps", async () => {
    const created = await Promise.all(
      replicas.flatMap((db) => Array.from({ length: 40 }, () => createPayment(db))),
    );
    const indexes = created.map((row) => row.derivation_index).sort((a, b) => a - b);
    expect(indexes).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(new Set(created.map((row) => row.address)).size).toBe(120);
  });

  test("an order_id is taken once across replicas; the losers roll back and give their index back", async () => {
    const before = await allocateIndexPeek(replicas[0] as PostgresDb);
    const results = await Promise.allSettled(
      replicas.map((db) => createPayment(db, { order_id: "order-42" })),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost.map((r) => (r.reason as { code: string }).code)).toEqual([
      UNIQUE_VIOLATION,
      UNIQUE_VIOLATION,
    ]);
    const existing = await getPaymentByOrderId((replicas[1] as PostgresDb).pool, "order-42");
    expect(existing?.derivation_index).toBe(before);
    expect(await allocateIndexPeek(replicas[0] as PostgresDb)).toBe(before + 1);
  });

  test("a transfer is recorded once, whichever replica writes it", async () => {
    const payment = await createPayment(replicas[0] as PostgresDb);
    const transfer = {
      network: "ethereum",
      tx_hash: `0x${"ab".repeat(32)}`,
      log_index: 3,
      block_number: 10,
      block_hash: `0x${"cd".repeat(32)}`,
      from_address: "0x01",
      to_address: payment.address,
      value: (2n ** 200n).toString(),
      payment_id: payment.id,
      recorded_at: 1,
      block_timestamp: 2,
    };
    const inserted = await Promise.all(replicas.map((db) => insertTransfer(db.pool, transfer)));
    expect(inserted.sort()).toEqual([false, false, true]);
    // The same hash and log index on another network is another transfer.
    expect(
      await insertTransfer(replicas[0]?.pool as pg.Pool, { ...transfer, network: "polygon" }),
    ).toBe(true);
    const { rows } = await (replicas[0] as PostgresDb).pool.query(
      "SELECT network, value FROM transfers WHERE payment_id = $1 ORDER BY network",
      [payment.id],
    );
    expect(rows).toEqual([
      { network: "ethereum", value: (2n ** 200n).toString() },
      { network: "polygon", value: (2n ** 200n).toString() },
    ]);
  });

  test("the cursor moves by compare-and-set: of two leaders moving it from the same block, one wins", async () => {
    const cursor = {
      network: "ethereum",
      chain_id: 31337,
      token: "0x0000000000000000000000000000000000000001",
      block_number: 100,
      block_hash: null,
      head_number: 100,
      updated_at: 1,
    };
    expect(await createCursor((replicas[0] as PostgresDb).pool, cursor)).toBe(true);
    expect(
      await createCursor((replicas[1] as PostgresDb).pool, { ...cursor, block_number: 5 }),
    ).toBe(false);
    const moves = await Promise.all(
      replicas.slice(0, 2).map((db, i) =>
        inTransaction(db.pool, (client) =>
          moveCursor(client, "ethereum", 100, {
            block_number: 110 + i,
            block_hash: `0x${i}`,
            head_number: 120,
            updated_at: 2,
          }),
        ),
      ),
    );
    expect(moves.sort()).toEqual([false, true]);
    const after = await getCursor((replicas[2] as PostgresDb).pool, "ethereum");
    expect([110, 111]).toContain(after?.block_number);
    // A deposed leader that comes back late, from the old position, changes nothing.
    expect(
      await moveCursor((replicas[2] as PostgresDb).pool, "ethereum", 100, {
        block_number: 200,
        block_hash: null,
        head_number: 200,
        updated_at: 3,
      }),
    ).toBe(false);
    expect(await getCursor((replicas[2] as PostgresDb).pool, "ethereum")).toEqual(after);
  });

  test("postback events: claims skip each other's rows, keep each payment's order, and expire", async () => {
    const a = await createPayment(replicas[0] as PostgresDb);
    const b = await createPayment(replicas[0] as PostgresDb);
    await inTransaction((replicas[0] as PostgresDb).pool, async (client) => {
      for (const [payment, type, id] of [
        [a, "payment.seen", "ev-a1"],
        [a, "payment.paid", "ev-a2"],
        [b, "payment.paid", "ev-b1"],
      ] as const) {
        await insertEvent(client, {
          id,
          payment_id: payment.id,
          type,
          url: "http://127.0.0.1:1/hook",
          created_at: 1_000,
          next_attempt_at: 1_000,
        });
      }
    });
    const now = 2_000;
    const claims = await Promise.all(
      replicas.map((db) => claimDueEvents(db.pool, { now, leaseMs: 30_000, limit: 10 })),
    );
    // Each payment's first pending event, once; a's second waits for its first.
    expect(
      claims
        .flat()
        .map((event) => event.id)
        .sort(),
    ).toEqual(["ev-a1", "ev-b1"]);
    expect(
      await claimDueEvents((replicas[0] as PostgresDb).pool, { now, leaseMs: 30_000, limit: 10 }),
    ).toEqual([]);
    // The claim on ev-b1 expires (its replica died): another claims it, with the same id.
    const later = now + 30_000;
    const reclaimed = await claimDueEvents((replicas[2] as PostgresDb).pool, {
      now: later,
      leaseMs: 30_000,
      limit: 10,
    });
    expect(reclaimed.map((event) => event.id).sort()).toEqual(["ev-a1", "ev-b1"]);
    // ev-a1 delivered: ev-a2 becomes claimable, after it and not before.
    const recorded = await inTransaction((replicas[1] as PostgresDb).pool, (client) =>
      recordAttempt(
        client,
        { event_id: "ev-a1", attempted_at: later, duration_ms: 5, status: 200, error: null },
        { state: "delivered", round_attempts: 0, next_attempt_at: later, delivered_at: later },
      ),
    );
    expect(recorded).toBe(true);
    const next = await claimDueEvents((replicas[1] as PostgresDb).pool, {
      now: later + 1,
      leaseMs: 30_000,
      limit: 10,
    });
    expect(next.map((event) => [event.id, event.type])).toEqual([["ev-a2", "payment.paid"]]);
  });

  test("a change notification reaches every listening replica at commit, and not on rollback", async () => {
    const listeners = await Promise.all(
      replicas.map(async (db) => {
        const client = await db.pool.connect();
        const heard: string[] = [];
        client.on("notification", (message) => heard.push(message.payload ?? ""));
        await client.query(`LISTEN ${CHANGES_CHANNEL}`);
        return { client, heard };
      }),
    );
    try {
      await expect(
        inTransaction((replicas[0] as PostgresDb).pool, async (client) => {
          await notifyChanged(client, { ids: ["rolledbackxxxxxx"], head: false });
          throw new Error("rolled back");
        }),
      ).rejects.toThrow("rolled back");
      await inTransaction((replicas[0] as PostgresDb).pool, (client) =>
        notifyChanged(client, { ids: ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"], head: true }),
      );
      await waitFor(() => listeners.every((l) => l.heard.length === 1), { what: "the nudges" });
      expect(listeners.map((l) => l.heard)).toEqual(
        replicas.map(() => ['{"ids":["aaaaaaaaaaaaaaaa","bbbbbbbbbbbbbbbb"],"head":true}']),
      );
    } finally {
      for (const l of listeners) {
        await l.client.query(`UNLISTEN ${CHANGES_CHANNEL}`);
        l.client.release();
      }
    }
  });
});

describe("change notices", () => {
  test("a commit naming many payments is split under the 8000-byte payload limit, the head in the first", () => {
    const ids = Array.from({ length: 1_000 }, (_, i) => `p${String(i).padStart(15, "0")}`);
    const payloads = changePayloads({ ids: [...ids, ids[0] as string], head: true });
    expect(payloads.length).toBe(3);
    for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThan(8000);
    const notices = payloads.map(parseChangePayload);
    expect(notices.flatMap((n) => ("ids" in n ? n.ids : []))).toEqual(ids);
    expect(notices.map((n) => ("head" in n ? n.head : undefined))).toEqual([true, false, false]);
  });

  test("too many ids for 16 notices, or an id too long for one, say 'all'; so does a payload not ours", () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `p${String(i).padStart(15, "0")}`);
    expect(changePayloads({ ids, head: false })).toEqual(['{"all":true}']);
    expect(changePayloads({ ids: ["x".repeat(8000)], head: false })).toEqual(['{"all":true}']);
    expect(changePayloads({ ids: [], head: false })).toEqual(['{"ids":[],"head":false}']);
    expect(parseChangePayload("aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb")).toEqual({ all: true });
    expect(parseChangePayload('{"ids":[1],"head":false}')).toEqual({ all: true });
  });
});

/** The derivation index the next payment would take (read, not taken). */
async function allocateIndexPeek(db: PostgresDb): Promise<number> {
  const { rows } = await db.pool.query<{ value: number }>(
    "SELECT value FROM counters WHERE name = 'derivation_index'",
  );
  return rows[0]?.value as number;
}

describe("copy from SQLite", () => {
  /** A SQLite database at this build's schema with payments in several states, transfers, events. */
  function populatedSqlite() {
    const sqlite = openDatabase({ path: ":memory:" });
    const store = createPaymentStore(sqlite);
    const events = createEventStore(sqlite);
    sqlite.transaction(() => {
      for (let i = 0; i < 3; i++) {
        const index = store.allocateIndex();
        store.insertPayment({
          ...newPayment(index, { order_id: i === 1 ? "order-1" : null }),
          amount: (10n ** 8n * BigInt(i + 1)).toString(),
        });
      }
      store.setCursor({
        network: "ethereum",
        chain_id: 31337,
        token: "0x0000000000000000000000000000000000000001",
        block_number: 40,
        block_hash: "0x40",
        head_number: 42,
        updated_at: 5,
      });
      store.rememberBlock("ethereum", {
        number: 40,
        hash: "0x40",
        parent_hash: "0x39",
        timestamp: 9,
      });
      // A value beyond int64: SQLite keeps it as TEXT, PostgreSQL as NUMERIC.
      store.insertTransfer({
        network: "ethereum",
        tx_hash: "0xaa",
        log_index: 0,
        block_number: 40,
        block_hash: "0x40",
        from_address: "0x01",
        to_address: newPayment(0).address,
        value: (2n ** 70n).toString(),
        payment_id: newPayment(0).id,
        recorded_at: 6,
        block_timestamp: 9,
      });
      for (const [id, type] of [
        ["ev-1", "payment.seen"],
        ["ev-2", "payment.paid"],
      ] as const) {
        events.insert({
          id,
          payment_id: newPayment(0).id,
          type,
          url: "http://127.0.0.1:1/hook",
          created_at: 7,
          next_attempt_at: 7,
        });
      }
    })();
    events.setPayload("ev-1", '{"x":1}');
    events.recordAttempt(
      { event_id: "ev-1", attempted_at: 8, duration_ms: 3, status: 200, error: null },
      { state: "delivered", round_attempts: 0, next_attempt_at: 8, delivered_at: 8 },
    );
    return sqlite;
  }

  test("copies every row, keeps each payment's event order and the counter, and verifies counts and sums", async () => {
    const sqlite = populatedSqlite();
    const db = await openPostgres({ url: await freshDatabase() });
    try {
      const summary = await copySqliteToPostgres({ from: sqlite, to: db });
      expect(summary).toEqual({
        rows: {
          payments: 3,
          transfers: 1,
          blocks: 1,
          chain_cursor: 1,
          events: 2,
          postback_attempts: 1,
        },
        sums: {
          "payments.amount": "600000000",
          "payments.paid_amount": "0",
          "payments.late_amount": "0",
          "payments.wrong_network_amount": "0",
          "transfers.value": (2n ** 70n).toString(),
        },
        derivationIndex: 3,
      });
      for (const table of [
        "payments",
        "transfers",
        "blocks",
        "chain_cursor",
        "postback_attempts",
      ]) {
        const source = sqlite.prepare(`SELECT * FROM ${table} ORDER BY 1, 2`).all();
        const { rows } = await db.pool.query(`SELECT * FROM ${table} ORDER BY 1, 2`);
        expect(rows, table).toEqual(source);
      }
      const { rows: events } = await db.pool.query(
        "SELECT id, state, payload, attempts, lease_until FROM events ORDER BY seq",
      );
      expect(events).toEqual([
        { id: "ev-1", state: "delivered", payload: '{"x":1}', attempts: 1, lease_until: null },
        { id: "ev-2", state: "pending", payload: null, attempts: 0, lease_until: null },
      ]);
      // The pending event is claimable on PostgreSQL, and the next payment takes index 3.
      expect(
        (await claimDueEvents(db.pool, { now: 10, leaseMs: 1_000, limit: 5 })).map((e) => e.id),
      ).toEqual(["ev-2"]);
      expect((await createPayment(db)).derivation_index).toBe(3);
    } finally {
      sqlite.close();
      await db.close();
    }
  });

  test("refuses a target that is not empty, and changes nothing in it", async () => {
    const url = await freshDatabase();
    const db = await openPostgres({ url });
    try {
      await createPayment(db);
      const sqlite = populatedSqlite();
      const copy = copySqliteToPostgres({ from: sqlite, to: db });
      await expect(copy).rejects.toThrow(CopyTargetNotEmptyError);
      await expect(copy).rejects.toThrow(
        `database ${redactUrl(url)} already holds payments, cursors or events: migrate-db copies only into an empty database`,
      );
      sqlite.close();
      const { rows } = await db.pool.query<{ n: number }>(
        "SELECT count(*)::bigint AS n FROM payments",
      );
      expect(rows).toEqual([{ n: 1 }]);
    } finally {
      await db.close();
    }
  });
});

// NOTE: last in the file: it stops and restarts the shared cluster.
describe("change feed across a server restart", () => {
  test("nudges reach the listener; while the server is down it is not listening; after, it reconnects and says so", async () => {
    const url = await freshDatabase();
    const db = await openPostgres({ url, max: 2 });
    const heard: ChangeNotice[] = [];
    let reconnects = 0;
    const controller = new AbortController();
    const listener = listenForChanges({
      url,
      clock: createClock(),
      retryIntervalMs: 100,
      onChange: (notice) => heard.push(notice),
      onReconnect: () => reconnects++,
    });
    const running = listener.run(controller.signal);
    try {
      await waitFor(() => listener.listening(), { what: "listening" });
      await notifyChanged(db.pool, { ids: ["aaaaaaaaaaaaaaaa"], head: false });
      await waitFor(() => heard.length === 1, { what: "the first nudge" });
      await cluster.stop();
      await waitFor(() => !listener.listening(), { what: "not listening" });
      await cluster.start();
      await waitFor(() => listener.listening(), { what: "listening again", timeoutMs: 30_000 });
      expect(reconnects).toBe(1);
      // The pool reconnects too: its idle connections died with the server.
      await waitFor(
        async () => {
          try {
            await notifyChanged(db.pool, { ids: ["bbbbbbbbbbbbbbbb"], head: false });
            return true;
          } catch {
            return false;
          }
        },
        { what: "a query after the restart" },
      );
      await waitFor(() => heard.length >= 2, { what: "the nudge after the restart" });
      expect(heard[0]).toEqual({ ids: ["aaaaaaaaaaaaaaaa"], head: false });
      expect(heard.at(-1)).toEqual({ ids: ["bbbbbbbbbbbbbbbb"], head: false });
    } finally {
      controller.abort();
      await running;
      await db.close();
    }
  });
});
