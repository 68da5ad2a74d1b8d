/**
 * PostgreSQL: a connection pool to `database.url`, numbered append-only
 * migrations of its own (./migrations), and the same schema-version guard
 * as the SQLite backend. Several daemons (replicas) open the same database;
 * migrations run under an advisory lock, so replicas started together apply
 * each one once.
 */
import { fileURLToPath } from "node:url";
import pg from "pg";
import { SchemaTooNewError, SchemaTooOldError } from "../../internal/errors.ts";
import { type Migration, newestSchemaVersion, readMigrations } from "../storage.ts";

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

/** PostgreSQL's migrations (numbered on their own, not SQLite's). */
export function listPostgresMigrations(): Migration[] {
  return readMigrations(MIGRATIONS_DIR);
}

/** A client or a pool: anything that runs a query. */
export type Queryable = Pick<pg.ClientBase, "query">;

/**
 * Where the storage's queries run (postgres/storage.ts): on the connection
 * of the transaction the caller is in, else on the pool. `write` is for
 * statements that change rows, so that the storage knows to tell the other
 * replicas; `transaction` runs several statements atomically, joining the
 * caller's transaction if there is one.
 */
export type Connections = {
  read: Queryable;
  write: Queryable;
  transaction<R>(fn: () => Promise<R>): Promise<R>;
};

/**
 * Advisory lock key of the migrations (pg_advisory_xact_lock): the ASCII of
 * "0xbtcmig". Leadership uses another key (internal/leadership.ts).
 */
export const MIGRATION_LOCK_KEY = 0x3078_6274_636d_6967n;

/** `url` with its password replaced, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "redacted";
    return parsed.toString();
  } catch {
    // Not a URL we can parse: show nothing of it that could be a secret.
    return "postgres://[unparseable url redacted]";
  }
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * Column types as the store's rows have them (the SQLite rows' types):
 * BIGINT (times in ms, block numbers, indexes) becomes a number, refused if
 * it is not a safe integer; NUMERIC (amounts) stays a decimal string, turned
 * into bigint by the payment logic. Nothing becomes a float.
 */
export const ROW_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === INT8_OID) {
      return (text: string) => {
        const value = Number(text);
        if (!Number.isSafeInteger(value))
          throw new RangeError(`bigint column out of range: ${text}`);
        return value;
      };
    }
    if (oid === NUMERIC_OID) return (text: string) => text;
    return pg.types.getTypeParser(oid, format as "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

export type PostgresDb = {
  pool: pg.Pool;
  /** The database URL with its password redacted. */
  name: string;
  close(): Promise<void>;
};

/** The migration versions recorded in the database; none before the first. */
async function appliedVersions(db: Queryable): Promise<number[]> {
  const table = await db.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
  if (!table.rows[0]?.present) return [];
  const rows = await db.query<{ version: number }>(
    "SELECT version FROM schema_migrations ORDER BY version",
  );
  return rows.rows.map((row) => Number(row.version));
}

/** The schema version of the database (0: none, not a 0xbtcpay database). */
export async function postgresSchemaVersion(db: Queryable): Promise<number> {
  return Math.max(0, ...(await appliedVersions(db)));
}

/** The guard of store/index.ts, on PostgreSQL: refuses a newer schema, and with `current` an older one. */
async function checkSchema(
  db: Queryable,
  { name, current, migrations }: { name: string; current: boolean; migrations: Migration[] },
): Promise<void> {
  const applied = await appliedVersions(db);
  const version = Math.max(0, ...applied);
  const newest = newestSchemaVersion(migrations);
  if (version > newest) throw new SchemaTooNewError({ path: name, version, newest });
  if (current && migrations.some((m) => !applied.includes(m.version))) {
    throw new SchemaTooOldError({ path: name, version, newest });
  }
}

/**
 * Applies the migrations the database has not seen, all in one transaction
 * under an advisory lock (a replica starting meanwhile waits, then finds
 * them applied). Checks the schema guard under the same lock first.
 */
export async function migratePostgres(
  pool: pg.Pool,
  { name, migrations = listPostgresMigrations() }: { name: string; migrations?: Migration[] },
): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    await checkSchema(client, { name, current: false, migrations });
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at BIGINT  NOT NULL
    )`);
    const applied = new Set(await appliedVersions(client));
    const newlyApplied: number[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        [migration.version, migration.name, Date.now()],
      );
      newlyApplied.push(migration.version);
    }
    await client.query("COMMIT");
    return newlyApplied;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Opens a pool to `url`, checks the schema version and, unless `migrate`
 * is false (a CLI command), brings it up to date. Every connection commits
 * durably (`synchronous_commit = on`, whatever the server's default).
 */
export async function openPostgres({
  url,
  migrate = true,
  max = 20,
  migrations = listPostgresMigrations(),
}: {
  url: string;
  migrate?: boolean;
  /** Pool size. */
  max?: number;
  migrations?: Migration[];
}): Promise<PostgresDb> {
  const name = redactUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max,
    types: ROW_TYPES,
    // NOTE: a commit acknowledged to the shop must survive a crash of the
    // server: never trust a server-wide `synchronous_commit = off`.
    options: "-c synchronous_commit=on",
    connectionTimeoutMillis: 10_000,
  });
  // An idle client whose server went away emits `error`: without a handler
  // that would crash the process; the next query reconnects instead.
  pool.on("error", () => {});
  // NOTE: and so does a client checked out between two queries of a
  // transaction (the server restarting): without a listener that, too, would
  // crash the process; the transaction's next query fails instead.
  pool.on("connect", (client) => client.on("error", () => {}));
  try {
    if (migrate) await migratePostgres(pool, { name, migrations });
    else await checkSchema(pool, { name, current: true, migrations });
  } catch (error) {
    await pool.end();
    throw error;
  }
  return { pool, name, close: () => pool.end() };
}

/**
 * Runs `work` in one transaction on one pooled connection: committed if it
 * resolves, rolled back if it throws. `work` does database work only (no
 * RPC, no HTTP): a transaction held open across the network blocks others.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    try {
      await client.query("ROLLBACK");
    } catch {
      broken = true;
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
