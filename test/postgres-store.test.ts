/**
 * The PostgreSQL backend's storage rules on a real cluster made by the test
 * (test/helpers/postgres.ts): durable settings, migrations applied once
 * even by replicas opening together, the schema-version guard, amounts that
 * never pass through a float, and passwords kept out of messages.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SchemaTooNewError, SchemaTooOldError } from "../src/internal/errors.ts";
import {
  listPostgresMigrations,
  openPostgres,
  postgresSchemaVersion,
  redactUrl,
} from "../src/store/postgres/index.ts";
import { type PostgresCluster, startPostgres } from "./helpers/postgres.ts";

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
