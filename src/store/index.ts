/**
 * SQLite: one database file, opened with the durability settings on every
 * open, and numbered append-only migrations applied at start.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";

export type Db = Database.Database;

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

export type Migration = { version: number; name: string; sql: string };

/** The migrations shipped with this version, in order. */
export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: readFileSync(`${dir}${file}`, "utf8"),
    }));
}

/**
 * Opens (creating if needed) the database at `path` (":memory:" for tests)
 * and, unless `migrate` is false (a second connection of a running daemon),
 * brings its schema up to date.
 */
export function openDatabase({
  path,
  readonly = false,
  migrate: migrateSchema = true,
}: {
  path: string;
  readonly?: boolean;
  migrate?: boolean;
}): Db {
  const db = new Database(path, { readonly });
  // NOTE: synchronous must be set on every open. better-sqlite3 does not keep
  // it, and WAL at the default NORMAL can lose the last commits on power loss:
  // a payment acknowledged to the shop must survive that.
  if (!readonly) db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  if (!readonly && migrateSchema) migrate(db);
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
