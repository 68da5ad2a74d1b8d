/**
 * `0xbtcpay migrate-db` as an operator runs it: the real binary, a SQLite
 * file at this build's schema holding payments in every status, transfers,
 * blocks, a cursor and postback events with their attempts, copied into a
 * database of a real PostgreSQL cluster (test/helpers/postgres.ts).
 */
import { join } from "node:path";
import pg from "pg";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS } from "../../src/chain/anvil.ts";
import { listPostgresMigrations, ROW_TYPES, redactUrl } from "../../src/store/postgres/index.ts";
import { createEventStore } from "../../src/store/sqlite/events.ts";
import { openDatabase, schemaVersionOf } from "../../src/store/sqlite/index.ts";
import { lockDatabase } from "../../src/store/sqlite/lock.ts";
import { createPaymentStore } from "../../src/store/sqlite/payments.ts";
import type { LifecycleFields, NewPaymentRow } from "../../src/store/storage.ts";
import { CHILD_PROCESS_TIMEOUT_MS, cli, writeDaemonConfig } from "../helpers/cli.ts";
import {
  payInNewBlock,
  startPayment,
  startReceiver,
  startTestChain,
  startTestDaemon,
  status,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { type PostgresCluster, startPostgres } from "../helpers/postgres.ts";

let cluster: PostgresCluster;
const dir = tempDir();
let sqlitePath: string;
beforeAll(async () => {
  cluster = await startPostgres();
  sqlitePath = join(dir.path, "0xbtcpay.sqlite");
  populate(sqlitePath);
});
afterAll(async () => {
  await cluster?.remove();
  dir.cleanup();
});

const T0 = 1_750_000_000_000;
const HOOK = "http://127.0.0.1:1/hook";

function newPayment(index: number, overrides: Partial<NewPaymentRow> = {}): NewPaymentRow {
  return {
    id: `m${String(index).padStart(15, "0")}`,
    amount: tokens(index + 1).toString(),
    derivation_index: index,
    address: `0x${(0xabc000 + index).toString(16).padStart(40, "0")}`,
    data: `{"order":${index}}`,
    postback_url: HOOK,
    created_at: T0 + index * 1000,
    expires_at: T0 + 900_000,
    order_id: `order-${index}`,
    description: null,
    return_url: null,
    cancel_url: null,
    postback_events: null,
    networks: null,
    ...overrides,
  };
}

const OPEN: LifecycleFields = {
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
};

/**
 * A daemon's database, written through the store's own queries: five
 * payments (waiting, seen, paid, expired with a late transfer, cancelled)
 * and a sixth index handed out to a payment whose order id was taken (the
 * counter is 6), transfers (one beyond int64), recent blocks, the cursor,
 * and events delivered (with attempts), pending after a failed attempt,
 * and pending untried.
 */
function populate(path: string): void {
  const db = openDatabase({ path });
  try {
    const store = createPaymentStore(db);
    const events = createEventStore(db);
    db.transaction(() => {
      for (let i = 0; i < 6; i++) {
        const index = store.allocateIndex();
        // Index 5 went to a start_payment that rolled back: no row, the counter moved.
        if (i < 5) store.insertPayment(newPayment(index));
      }
      const transfer = (i: number, n: number, value: bigint, block: number) => {
        store.insertTransfer({
          network: "ethereum",
          tx_hash: `0x${"t".repeat(2)}${i}${n}`,
          log_index: n,
          block_number: block,
          block_hash: `0xb${block}`,
          from_address: "0x00000000000000000000000000000000000000f1",
          to_address: newPayment(i).address,
          value: value.toString(),
          payment_id: newPayment(i).id,
          recorded_at: T0 + 10_000 + block,
          block_timestamp: (T0 + block * 12_000) / 1000,
        });
      };
      // m1 seen: half of its amount.
      transfer(1, 0, tokens(1), 100);
      store.updateLifecycle(newPayment(1).id, {
        ...OPEN,
        status: "seen",
        seen_at: T0 + 20_000,
        paid_amount: tokens(1).toString(),
      });
      // m2 paid, with one transfer of a value beyond int64 on top.
      transfer(2, 0, tokens(3), 101);
      transfer(2, 1, 2n ** 70n, 102);
      store.updateLifecycle(newPayment(2).id, {
        ...OPEN,
        status: "paid",
        seen_at: T0 + 21_000,
        paid_at: T0 + 40_000,
        tx_hash: "0xtt20",
        block_number: 101,
        paid_amount: (tokens(3) + 2n ** 70n).toString(),
        network: "ethereum",
        block_network: "ethereum",
      });
      // m3 expired; funds arrived late.
      transfer(3, 0, tokens(4), 103);
      store.updateLifecycle(newPayment(3).id, {
        ...OPEN,
        status: "expired",
        seen_at: T0 + 950_000,
        paid_amount: tokens(4).toString(),
        late_amount: tokens(4).toString(),
      });
      store.setCancelled({ id: newPayment(4).id, now: T0 + 30_000 });
      store.setCursor({
        network: "ethereum",
        chain_id: 31337,
        token: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        block_number: 103,
        block_hash: "0xb103",
        head_number: 105,
        updated_at: T0 + 60_000,
      });
      for (const number of [101, 102, 103]) {
        store.rememberBlock("ethereum", {
          number,
          hash: `0xb${number}`,
          parent_hash: `0xb${number - 1}`,
          timestamp: (T0 + number * 12_000) / 1000,
        });
      }
      for (const [id, payment, type] of [
        ["ev-seen-1", 1, "payment.seen"],
        ["ev-paid-2", 2, "payment.paid"],
        ["ev-expired-3", 3, "payment.expired"],
        ["ev-cancelled-4", 4, "payment.cancelled"],
      ] as const) {
        events.insert({
          id,
          payment_id: newPayment(payment).id,
          type,
          url: HOOK,
          created_at: T0 + 50_000,
          next_attempt_at: T0 + 50_000,
        });
      }
    })();
    // Delivered at the second attempt (`round_attempts`: the count each attempt started from).
    events.setPayload("ev-paid-2", '{"id":"m000000000000002","status":"paid"}');
    events.recordAttempt(
      {
        event_id: "ev-paid-2",
        attempted_at: T0 + 51_000,
        duration_ms: 30,
        status: 500,
        error: null,
      },
      { state: "pending", round_attempts: 0, next_attempt_at: T0 + 61_000, delivered_at: null },
    );
    events.recordAttempt(
      {
        event_id: "ev-paid-2",
        attempted_at: T0 + 61_000,
        duration_ms: 12,
        status: 200,
        error: null,
      },
      {
        state: "delivered",
        round_attempts: 1,
        next_attempt_at: T0 + 61_000,
        delivered_at: T0 + 61_000,
      },
    );
    // Pending after a failed attempt: its payload and retry state must survive.
    events.setPayload("ev-expired-3", '{"id":"m000000000000003","status":"expired"}');
    events.recordAttempt(
      {
        event_id: "ev-expired-3",
        attempted_at: T0 + 52_000,
        duration_ms: 5_000,
        status: null,
        error: "timeout",
      },
      { state: "pending", round_attempts: 0, next_attempt_at: T0 + 82_000, delivered_at: null },
    );
  } finally {
    db.close();
  }
}

/** Rows as the store reads them (BIGINT a number, NUMERIC a decimal string), comparable with SQLite's. */
async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, types: ROW_TYPES });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

/** What a copy must keep, read from either side with the same SQL. */
const CHECKS = {
  counts: `SELECT (SELECT count(*) FROM payments) AS payments, (SELECT count(*) FROM transfers) AS transfers,
    (SELECT count(*) FROM blocks) AS blocks, (SELECT count(*) FROM chain_cursor) AS chain_cursor,
    (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM postback_attempts) AS postback_attempts,
    (SELECT value FROM counters WHERE name = 'derivation_index') AS counter`,
  statuses: "SELECT id, status, paid_amount, late_amount, order_id FROM payments ORDER BY id",
  events: `SELECT id, payment_id, type, state, attempts, round_attempts, next_attempt_at, last_status,
    last_error, delivered_at, payload FROM events ORDER BY id`,
  attempts:
    "SELECT event_id, attempted_at, duration_ms, status, error FROM postback_attempts ORDER BY id",
  cursor: "SELECT network, chain_id, block_number, block_hash, head_number FROM chain_cursor",
};

const SCHEMA_VERSION = Math.max(...listPostgresMigrations().map((m) => m.version));
const TRANSFERS_SUM = (tokens(1) + tokens(3) + 2n ** 70n + tokens(4)).toString();

describe("0xbtcpay migrate-db", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("copies every table of a populated SQLite database, verified, and a second run is refused with nothing changed", async () => {
    const url = await cluster.createDatabase("migrated");
    const result = await cli(["migrate-db", "--from", sqlitePath, "--to", url]);
    expect(result.stderr).not.toContain(cluster.password);
    expect(result.stdout).not.toContain(cluster.password);
    const probe = openDatabase({ path: sqlitePath, readonly: true });
    const sqliteVersion = schemaVersionOf(probe);
    probe.close();
    expect(result.code).toBe(0);
    const name = redactUrl(url);
    expect(result.stderr.split("\n")).toEqual([
      `migrate-db: reading ${sqlitePath} (schema version ${sqliteVersion})`,
      `migrate-db: ${name}: schema version ${SCHEMA_VERSION}`,
      "migrate-db: payments: 5 rows copied",
      "migrate-db: transfers: 4 rows copied",
      "migrate-db: blocks: 3 rows copied",
      "migrate-db: chain_cursor: 1 row copied",
      "migrate-db: events: 4 rows copied",
      "migrate-db: postback_attempts: 3 rows copied",
      "migrate-db: counts, amount sums and the derivation counter verified; committed",
      "",
    ]);
    const amountSum = [1, 2, 3, 4, 5].reduce((sum, n) => sum + tokens(n), 0n).toString();
    const paidSum = (tokens(1) + tokens(3) + 2n ** 70n + tokens(4)).toString();
    expect(result.stdout).toBe(
      [
        `migrated ${sqlitePath} to ${name}`,
        "  payments                              5 rows",
        "  transfers                             4 rows",
        "  blocks                                3 rows",
        "  chain_cursor                          1 row",
        "  events                                4 rows",
        "  postback_attempts                     3 rows",
        "  derivation counter                    6",
        `  sum of payments.amount                ${amountSum} base units`,
        `  sum of payments.paid_amount           ${paidSum} base units`,
        `  sum of payments.late_amount           ${tokens(4)} base units`,
        "  sum of payments.wrong_network_amount  0 base units",
        `  sum of transfers.value                ${TRANSFERS_SUM} base units`,
        "",
      ].join("\n"),
    );

    // Read back on PostgreSQL with SQL, against the SQLite file.
    const sqlite = openDatabase({ path: sqlitePath, readonly: true });
    try {
      for (const [check, sql] of Object.entries(CHECKS)) {
        const source = sqlite.prepare(sql).all();
        expect(await query(url, sql), check).toEqual(source);
      }
      expect(
        await query(
          url,
          "SELECT sum(amount)::text AS amount, sum(paid_amount)::text AS paid FROM payments",
        ),
      ).toEqual([{ amount: amountSum, paid: paidSum }]);
      expect(await query(url, "SELECT sum(value)::text AS value FROM transfers")).toEqual([
        { value: TRANSFERS_SUM },
      ]);
    } finally {
      sqlite.close();
    }
    expect(await query(url, CHECKS.counts)).toEqual([
      {
        payments: 5,
        transfers: 4,
        blocks: 3,
        chain_cursor: 1,
        events: 4,
        postback_attempts: 3,
        counter: 6,
      },
    ]);
    expect(
      await query(
        url,
        "SELECT id, attempts, round_attempts, next_attempt_at, payload FROM events WHERE state = 'pending' ORDER BY seq",
      ),
    ).toEqual([
      {
        id: "ev-seen-1",
        attempts: 0,
        round_attempts: 0,
        next_attempt_at: T0 + 50_000,
        payload: null,
      },
      {
        id: "ev-expired-3",
        attempts: 1,
        round_attempts: 1,
        next_attempt_at: T0 + 82_000,
        payload: '{"id":"m000000000000003","status":"expired"}',
      },
      {
        id: "ev-cancelled-4",
        attempts: 0,
        round_attempts: 0,
        next_attempt_at: T0 + 50_000,
        payload: null,
      },
    ]);

    expect(
      await query(
        url,
        "SELECT id, attempts, last_status, delivered_at FROM events WHERE state = 'delivered'",
      ),
    ).toEqual([{ id: "ev-paid-2", attempts: 2, last_status: 200, delivered_at: T0 + 61_000 }]);

    // Again: refused, exit 1, nothing written.
    const before = await query(
      url,
      `${CHECKS.counts}, (SELECT count(*) FROM schema_migrations) AS migrations`,
    );
    const again = await cli(["migrate-db", "--from", sqlitePath, "--to", url]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toContain(
      `0xbtcpay: database ${name} already holds payments, cursors or events: migrate-db copies only into an empty database\n`,
    );
    expect(again.stderr).not.toContain(cluster.password);
    expect(
      await query(url, `${CHECKS.counts}, (SELECT count(*) FROM schema_migrations) AS migrations`),
    ).toEqual(before);
  });

  test("takes the target from $OXBTCPAY_DATABASE_URL and the SQLite file from the config's database.path", async () => {
    const url = await cluster.createDatabase("from_env");
    const config = join(dir.path, "config.json");
    writeDaemonConfig(dir.path, {
      rpcUrl: "http://127.0.0.1:1",
      token: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
      dbPath: sqlitePath,
    });
    const result = await cli(["migrate-db", "--config", config], { OXBTCPAY_DATABASE_URL: url });
    expect(result.stderr).not.toContain(cluster.password);
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")[0]).toBe(`migrated ${sqlitePath} to ${redactUrl(url)}`);
    expect(await query(url, "SELECT count(*) AS n FROM payments")).toEqual([{ n: 5 }]);
  });

  test("an unreachable server is a one-line error without the password, exit 1", async () => {
    const url = `postgres://postgres:${cluster.password}@127.0.0.1:1/oxbtcpay`;
    const result = await cli(["migrate-db", "--from", sqlitePath, "--to", url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).not.toContain(cluster.password);
    expect(result.stderr).toContain(
      "0xbtcpay: cannot open postgres://postgres:redacted@127.0.0.1:1/oxbtcpay: connect ECONNREFUSED 127.0.0.1:1\n",
    );
  });

  test("a wrong password and a URL that is not one are refused without the password in the output", async () => {
    const wrong = cluster.urlOf("postgres").replace(cluster.password, "not-the-password-42");
    const refused = await cli(["migrate-db", "--from", sqlitePath, "--to", wrong]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).not.toContain("not-the-password-42");
    expect(refused.stderr).toContain(
      `0xbtcpay: cannot open ${redactUrl(wrong)}: password authentication failed for user "postgres"\n`,
    );

    const bad = await cli([
      "migrate-db",
      "--from",
      sqlitePath,
      "--to",
      "mysql://u:hunter2@127.0.0.1/x",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      "0xbtcpay: --to: expected a URL like postgres://USER:PASSWORD@HOST:5432/DATABASE, got mysql://u:redacted@127.0.0.1/x\n",
    );
    const garbage = await cli([
      "migrate-db",
      "--from",
      sqlitePath,
      "--to",
      "postgres://u:hunter2@127.0.0.1:port/x",
    ]);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).not.toContain("hunter2");

    const none = await cli(["migrate-db", "--from", sqlitePath]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      "0xbtcpay: no PostgreSQL database: pass --to URL or set OXBTCPAY_DATABASE_URL\n",
    );
  });

  test("a missing --from file is refused, and nothing is created", async () => {
    const url = await cluster.createDatabase("missing_source");
    const missing = join(dir.path, "nope.sqlite");
    const result = await cli(["migrate-db", "--from", missing, "--to", url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`0xbtcpay: no SQLite database at ${missing}\n`);
    expect(await query(url, "SELECT to_regclass('payments') IS NULL AS absent")).toEqual([
      { absent: true },
    ]);
  });

  test("refuses while a daemon holds the SQLite file's lock, and changes nothing", async () => {
    const url = await cluster.createDatabase("locked");
    const lock = lockDatabase({ path: sqlitePath, command: "serve", now: T0 });
    try {
      const result = await cli(["migrate-db", "--from", sqlitePath, "--to", url]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `0xbtcpay: refusing to migrate: database ${sqlitePath} is in use by a 0xbtcpay daemon (pid ${process.pid}, started ${new Date(T0).toISOString()}): stop it first\n`,
      );
    } finally {
      lock.release();
    }
    expect(await query(url, "SELECT to_regclass('payments') IS NULL AS absent")).toEqual([
      { absent: true },
    ]);
  });

  test("--help documents the options, the lock, the verification and an example", async () => {
    const result = await cli(["migrate-db", "--help"]);
    expect(result.code).toBe(0);
    for (const text of [
      "Usage: 0xbtcpay migrate-db [options]",
      "--from <file>",
      "--to <url>",
      "$OXBTCPAY_DATABASE_URL",
      "-c, --config <file>",
      "refuses while one runs on it",
      "an empty",
      "row counts, the sums of every amount column",
      "0xbtcpay migrate-db --from /var/lib/0xbtcpay/0xbtcpay.sqlite",
    ]) {
      expect(result.stdout).toContain(text);
    }
    const listing = await cli(["--help"]);
    expect(listing.stdout).toContain("migrate-db");
  });
});

describe("after migrate-db, the daemon continues on PostgreSQL", () => {
  test("the same payments, the scan from the same cursor, the same derivation counter, and the pending postback delivered under its webhook-id", async () => {
    const chain = await startTestChain();
    // The shop is down for the first attempt, up for the retry.
    let answers = 0;
    const shop = await startReceiver(() => (answers++ === 0 ? 500 : 200));
    try {
      await chain.mint(chain.token, ANVIL_ACCOUNTS[1] as Hex, tokens(10));
      const path = join(dir.path, "continues.sqlite");
      const overrides = {
        chain: { confirmations: 1 },
        postbacks: { retrySchedule: ["2s"] },
      };
      const sqlite = await startTestDaemon(chain, path, overrides);
      const paid = await startPayment(sqlite.privateUrl, {
        amount: "1",
        data: "paid-before",
        postback_url: shop.url,
      });
      const open = await startPayment(sqlite.privateUrl, {
        amount: "1",
        data: "open-before",
        postback_url: shop.url,
      });
      await payInNewBlock(chain, { to: paid.address, value: tokens(1) });
      await chain.mine(1);
      await waitFor(() => shop.received.length === 1, { what: "the first, failed attempt" });
      await sqlite.stop();

      const url = await cluster.createDatabase("continues");
      const migrated = await cli(["migrate-db", "--from", path, "--to", url]);
      expect(migrated.code, migrated.stderr).toBe(0);

      const onPostgres = await startTestDaemon(chain, { url }, overrides);
      try {
        // The retry comes from the daemon on PostgreSQL, with the same id and body.
        await waitFor(() => shop.received.length === 2, { what: "the retry", timeoutMs: 30_000 });
        const [first, retry] = shop.received;
        expect(retry?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
        expect(retry?.body).toBe(first?.body);
        expect((await status(onPostgres.publicUrl, paid.id)).body.status).toBe("paid");
        // The scan goes on from the copied cursor: the open payment is paid now.
        await payInNewBlock(chain, { to: open.address, value: tokens(1) });
        await chain.mine(1);
        await waitFor(
          async () => (await status(onPostgres.publicUrl, open.id)).body.status === "paid",
          { what: "the open payment paid on PostgreSQL" },
        );
        // The counter went with the data: the next payment takes index 2, a new address.
        const next = await startPayment(onPostgres.privateUrl, {
          amount: "1",
          data: null,
          postback_url: null,
        });
        expect(next.address).not.toBe(paid.address);
        expect(next.address).not.toBe(open.address);
        expect(
          await query(url, "SELECT derivation_index FROM payments WHERE id = $1", [next.id]),
        ).toEqual([{ derivation_index: 2 }]);
      } finally {
        await onPostgres.stop();
      }
    } finally {
      await shop.close();
      await chain.stop();
    }
  });
});
