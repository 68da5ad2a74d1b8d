/**
 * Copies a SQLite database (at this build's schema) into an empty
 * PostgreSQL one: payments, transfers, recent blocks, the scan cursors,
 * postback events with their delivery state and attempts, and the
 * derivation counter. One PostgreSQL transaction: it commits only after
 * the counts and the sums of every amount read back equal the source's.
 */
import { BaseError } from "../../internal/errors.ts";
import type { Db } from "../sqlite/index.ts";
import { EVENT_COLUMNS } from "./events.ts";
import { inTransaction, type PostgresDb, type Queryable } from "./index.ts";

/** The target already holds a 0xbtcpay database's data: copying could mix two shops. */
export class CopyTargetNotEmptyError extends BaseError {
  static override code = "COPY_TARGET_NOT_EMPTY";
}

/** What was read back differs from the source: nothing was committed. */
export class CopyVerificationError extends BaseError {
  static override code = "COPY_VERIFICATION";
}

/** Tables in foreign-key order, their columns, and the SQLite order that keeps insertion order. */
const TABLES = [
  {
    name: "payments",
    order: "rowid",
    columns: [
      "id",
      "amount",
      "derivation_index",
      "address",
      "data",
      "postback_url",
      "created_at",
      "expires_at",
      "seen_at",
      "paid_at",
      "tx_hash",
      "block_number",
      "paid_amount",
      "late_amount",
      "paid_late_at",
      "reorged_after_paid_at",
      "order_id",
      "description",
      "return_url",
      "cancel_url",
      "cancelled_at",
      "status",
      "postback_events",
      "networks",
      "network",
      "block_network",
      "wrong_network_amount",
    ],
    amounts: ["amount", "paid_amount", "late_amount", "wrong_network_amount"],
  },
  {
    name: "transfers",
    order: "rowid",
    columns: [
      "network",
      "tx_hash",
      "log_index",
      "block_number",
      "block_hash",
      "from_address",
      "to_address",
      "value",
      "payment_id",
      "recorded_at",
      "block_timestamp",
    ],
    amounts: ["value"],
  },
  {
    name: "blocks",
    order: "network, number",
    columns: ["network", "number", "hash", "parent_hash", "timestamp"],
    amounts: [],
  },
  {
    name: "chain_cursor",
    order: "id",
    columns: [
      "id",
      "network",
      "chain_id",
      "token",
      "block_number",
      "block_hash",
      "head_number",
      "updated_at",
    ],
    amounts: [],
  },
  {
    // NOTE: inserted in rowid order, so the identity `seq` keeps each
    // payment's events in the order they were written (per-payment order).
    name: "events",
    order: "rowid",
    columns: EVENT_COLUMNS,
    amounts: [],
  },
  {
    name: "postback_attempts",
    order: "id",
    columns: ["id", "event_id", "attempted_at", "duration_ms", "status", "error"],
    amounts: [],
  },
] as const;

/** Identity columns whose SQLite values are kept (OVERRIDING SYSTEM VALUE), then the sequence moved past them. */
const KEPT_IDENTITIES: Record<string, string> = { chain_cursor: "id", postback_attempts: "id" };

const BATCH_ROWS = 500;

export type CopySummary = {
  /** Rows copied per table. */
  rows: Record<string, number>;
  /** Sums of the amount columns (base units, decimal strings), as verified on both sides. */
  sums: Record<string, string>;
  derivationIndex: number;
};

async function targetIsEmpty(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ used: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM payments) OR EXISTS (SELECT 1 FROM chain_cursor)
       OR EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM blocks)
       OR (SELECT value FROM counters WHERE name = 'derivation_index') <> 0 AS used`,
  );
  return rows[0]?.used === false;
}

/** The source's row counts and amount sums (summed as bigint: TEXT amounts may exceed int64). */
function sourceSummary(from: Db): CopySummary {
  const rows: Record<string, number> = {};
  const sums: Record<string, string> = {};
  for (const table of TABLES) {
    rows[table.name] = (
      from.prepare(`SELECT count(*) AS n FROM ${table.name}`).get() as { n: number }
    ).n;
    for (const column of table.amounts) {
      let sum = 0n;
      for (const value of from.prepare(`SELECT ${column} FROM ${table.name}`).pluck().iterate()) {
        sum += BigInt(value as string);
      }
      sums[`${table.name}.${column}`] = sum.toString();
    }
  }
  const counter = from
    .prepare("SELECT value FROM counters WHERE name = 'derivation_index'")
    .pluck()
    .get() as number;
  return { rows, sums, derivationIndex: counter };
}

async function targetSummary(to: Queryable): Promise<CopySummary> {
  const rows: Record<string, number> = {};
  const sums: Record<string, string> = {};
  for (const table of TABLES) {
    const result = await to.query<{ n: number }>(`SELECT count(*)::bigint AS n FROM ${table.name}`);
    rows[table.name] = result.rows[0]?.n as number;
    for (const column of table.amounts) {
      const sum = await to.query<{ s: string }>(
        `SELECT coalesce(sum(${column}), 0)::text AS s FROM ${table.name}`,
      );
      sums[`${table.name}.${column}`] = sum.rows[0]?.s as string;
    }
  }
  const counter = await to.query<{ value: number }>(
    "SELECT value FROM counters WHERE name = 'derivation_index'",
  );
  return { rows, sums, derivationIndex: counter.rows[0]?.value as number };
}

/** The tables copied, in the order they are copied (`onTable` reports them in this order). */
export const COPIED_TABLES: readonly string[] = TABLES.map((table) => table.name);

/**
 * Copies `from` into `to` (migrated, empty: {@link CopyTargetNotEmptyError}
 * otherwise) and returns what was verified. Nothing is committed unless the
 * target's counts, sums and counter equal the source's
 * ({@link CopyVerificationError}). `onTable` is called after each table's
 * rows are written (not yet committed), for progress lines.
 */
export async function copySqliteToPostgres({
  from,
  to,
  onTable,
}: {
  from: Db;
  to: PostgresDb;
  onTable?: (table: string, rows: number) => void;
}): Promise<CopySummary> {
  // NOTE: one read transaction on the source for the summary and every
  // table: a writer meanwhile (a CLI command on the file) cannot make the
  // rows copied differ from the counts they are verified against.
  const snapshot = !from.inTransaction;
  if (snapshot) from.exec("BEGIN");
  try {
    return await copyRows({ from, to, onTable });
  } finally {
    if (snapshot && from.inTransaction) from.exec("ROLLBACK");
  }
}

async function copyRows({
  from,
  to,
  onTable,
}: {
  from: Db;
  to: PostgresDb;
  onTable: ((table: string, rows: number) => void) | undefined;
}): Promise<CopySummary> {
  const expected = sourceSummary(from);
  return await inTransaction(to.pool, async (client) => {
    // NOTE: a lock on the counter row first: two copies into one target
    // cannot both find it empty.
    await client.query("SELECT value FROM counters WHERE name = 'derivation_index' FOR UPDATE");
    if (!(await targetIsEmpty(client))) {
      throw new CopyTargetNotEmptyError(
        `database ${to.name} already holds payments, cursors or events: migrate-db copies only into an empty database`,
      );
    }
    for (const table of TABLES) {
      const columns = table.columns as readonly string[];
      const overriding = KEPT_IDENTITIES[table.name] ? " OVERRIDING SYSTEM VALUE" : "";
      const select = from.prepare(
        `SELECT ${columns.join(", ")} FROM ${table.name} ORDER BY ${table.order}`,
      );
      let batch: unknown[][] = [];
      let copied = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const values = batch
          .map((_, r) => `(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(", ")})`)
          .join(", ");
        await client.query(
          `INSERT INTO ${table.name} (${columns.join(", ")})${overriding} VALUES ${values}`,
          batch.flat(),
        );
        copied += batch.length;
        batch = [];
      };
      for (const row of select.raw().iterate()) {
        batch.push(row as unknown[]);
        if (batch.length >= BATCH_ROWS) await flush();
      }
      await flush();
      onTable?.(table.name, copied);
      const identity = KEPT_IDENTITIES[table.name];
      if (identity) {
        await client.query(
          `SELECT setval(pg_get_serial_sequence('${table.name}', '${identity}'),
             coalesce((SELECT max(${identity}) FROM ${table.name}), 0) + 1, false)`,
        );
      }
    }
    await client.query("UPDATE counters SET value = $1 WHERE name = 'derivation_index'", [
      expected.derivationIndex,
    ]);
    const actual = await targetSummary(client);
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      throw new CopyVerificationError(
        `the copy read back differs from the source (nothing committed): expected ${JSON.stringify(expected)}, found ${JSON.stringify(actual)}`,
      );
    }
    return actual;
  });
}
