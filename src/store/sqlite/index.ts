/**
 * The SQLite backend's database: one file, opened with the durability
 * settings on every open (WAL, synchronous=FULL), its own numbered
 * append-only migrations (./migrations) applied at start, and the write
 * probe of /readyz. Every open checks the schema version first (see
 * {@link checkSchema}). The daemon's default; ./storage.ts puts the
 * Storage interface on it.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import {
  DatabaseMissingError,
  SchemaTooNewError,
  SchemaTooOldError,
} from "../../internal/errors.ts";
import {
  type Migration,
  newestSchemaVersion as newestVersionOf,
  readMigrations,
  type WriteProbe,
} from "../storage.ts";

export type Db = Database.Database;

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

/** The migrations shipped with this version, in order. */
export function listMigrations(): Migration[] {
  return readMigrations(MIGRATIONS_DIR);
}

/** The newest schema version this build ships: the number of its last migration. */
export function newestSchemaVersion(migrations = listMigrations()): number {
  return newestVersionOf(migrations);
}

/** The schema version of `db`: its newest applied migration (0: none, not a 0xbtcpay database). */
export function schemaVersionOf(db: Db): number {
  return Math.max(0, ...appliedVersions(db));
}

/** The migration versions recorded in `db`; none if it has no schema_migrations table yet. */
function appliedVersions(db: Db): number[] {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (!table) return [];
  return db
    .prepare("SELECT version FROM schema_migrations ORDER BY version")
    .all()
    .map((row) => (row as { version: number }).version);
}

/**
 * Refuses a database this build must not touch: one with a migration newer
 * than any it ships ({@link SchemaTooNewError}: running old code on it, or
 * applying our migrations around the unknown one, could corrupt it), and,
 * with `current`, one that lacks a shipped migration ({@link SchemaTooOldError}:
 * its queries would not match the tables).
 */
function checkSchema(
  db: Db,
  {
    path,
    current,
    migrations = listMigrations(),
  }: {
    path: string;
    current: boolean;
    migrations?: Migration[];
  },
): void {
  const applied = appliedVersions(db);
  const version = Math.max(0, ...applied);
  const newest = newestSchemaVersion(migrations);
  if (version > newest) throw new SchemaTooNewError({ path, version, newest });
  if (current && migrations.some((m) => !applied.includes(m.version))) {
    throw new SchemaTooOldError({ path, version, newest });
  }
}

/**
 * Opens the database at `path` (":memory:" for tests) and checks its schema
 * version. By default it creates the file if needed and brings the schema up
 * to date: the daemon's open. With `migrate: false` or `readonly` (a CLI
 * command, a second connection of a running daemon) it changes no schema: the
 * file must exist ({@link DatabaseMissingError}, nothing is created) and be at
 * this build's version ({@link SchemaTooOldError}), unless `allowOlder` (a
 * command that copies pages, not rows: `backup`).
 */
export function openDatabase({
  path,
  readonly = false,
  migrate: migrateSchema = true,
  allowOlder = false,
  verbose,
}: {
  path: string;
  readonly?: boolean;
  migrate?: boolean;
  allowOlder?: boolean;
  /** Told every SQL statement the connection runs, its parameters filled in. */
  verbose?: ((sql: string) => void) | undefined;
}): Db {
  const migrating = migrateSchema && !readonly;
  if (!migrating && path !== ":memory:" && !existsSync(path)) {
    throw new DatabaseMissingError({ path });
  }
  const db = new Database(path, {
    readonly,
    fileMustExist: !migrating,
    ...(verbose ? { verbose: (sql: unknown) => verbose(String(sql)) } : {}),
  });
  try {
    // NOTE: synchronous must be set on every open. better-sqlite3 does not keep
    // it, and WAL at the default NORMAL can lose the last commits on power loss:
    // a payment acknowledged to the shop must survive that.
    if (!readonly) db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    db.pragma("foreign_keys = ON");
    // Before any migration: one from a newer build must stop us from adding ours.
    checkSchema(db, { path, current: !migrating && !allowOlder });
    if (migrating) migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** Applies the migrations that `db` has not seen yet, each in its own transaction. */
export function migrate(db: Db, migrations = listMigrations()): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const applied = new Set(
    db
      .prepare("SELECT version FROM schema_migrations")
      .all()
      .map((row) => (row as { version: number }).version),
  );
  const newlyApplied: number[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
        migration.version,
        migration.name,
        Date.now(),
      );
    })();
    newlyApplied.push(migration.version);
  }
  return newlyApplied;
}

/**
 * Whether this connection could write now, without writing: `BEGIN
 * IMMEDIATE` takes the database's write lock (it fails if the connection or
 * the file is read-only, or if another process holds the lock longer than
 * `busyTimeoutMs`), and `ROLLBACK` releases it at once. Nothing reaches the
 * disk, so a probe costs no fsync; a disk that is full shows up on the next
 * commit instead, as a scan that stops moving.
 *
 * NOTE: the connection's busy timeout (5 s, for the daemon's own writes) is
 * lowered for the probe only: better-sqlite3 is synchronous, and a probe
 * waiting 5 s for another process's lock would stall the event loop that long.
 */
export function probeWritable(db: Db, { busyTimeoutMs = 100 } = {}): WriteProbe {
  // Between two turns of the event loop no transaction of ours is open;
  // if one were, this connection holds the lock and can write.
  if (db.inTransaction) return { ok: true };
  // NOTE: SQLite grants BEGIN IMMEDIATE on a read-only connection in WAL mode.
  if (db.readonly) return { ok: false, error: "the database is open read-only" };
  const previous = db.pragma("busy_timeout", { simple: true }) as number;
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  try {
    db.exec("BEGIN IMMEDIATE");
    db.exec("ROLLBACK");
    return { ok: true };
  } catch (error) {
    if (db.inTransaction) db.exec("ROLLBACK");
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  } finally {
    db.pragma(`busy_timeout = ${previous}`);
  }
}
