/**
 * Online backup and restore of the SQLite database.
 *
 * Backup copies pages with SQLite's backup API inside one read transaction:
 * in WAL mode that is a snapshot, consistent as of its first read, that the
 * daemon's writes do not disturb (they go on in the WAL; a backup without
 * the held snapshot would start over at every write from the daemon, and
 * under steady load might never finish). The copy is written beside the
 * target, integrity-checked, fsynced and only then renamed into place.
 *
 * Restore checks the file, takes the daemon's lock (refused while a daemon
 * runs), folds the current database's WAL into it and keeps it aside, then
 * renames the checked copy into place: at every moment the path holds either
 * the old database or the new one, never a mix of one's file and the
 * other's WAL.
 */
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { BackupError, errorMessage, SchemaTooNewError } from "../../internal/errors.ts";
import { newestSchemaVersion, openDatabase, schemaVersionOf } from "./index.ts";
import { lockDatabase } from "./lock.ts";

/** Pages copied per step of the backup API; the event loop turns between steps. */
const STEP_PAGES = 100;

type Copy = { schemaVersion: number; payments: number; derivationCounter: number };

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes a rename in `dir` durable; some platforms cannot open a directory, which is fine there. */
function fsyncDir(dir: string): void {
  try {
    fsyncPath(dir);
  } catch {
    // NOTE: Windows refuses to open directories; its renames need no fsync of the parent.
  }
}

/** Removes `path` and the files SQLite may have left beside it. */
function removeWithSidecars(path: string): void {
  for (const suffix of ["", "-journal", "-wal", "-shm"])
    rmSync(`${path}${suffix}`, { force: true });
}

/** The first lines of `PRAGMA integrity_check`, or undefined when it says "ok". */
function integrityProblems(db: Database.Database): string | undefined {
  const rows = db.pragma("integrity_check(5)", { simple: false }) as Array<{
    integrity_check: string;
  }>;
  const lines = rows.map((row) => row.integrity_check);
  return lines.length === 1 && lines[0] === "ok" ? undefined : lines.join("; ");
}

/** Facts about a 0xbtcpay database file, read after its integrity check. */
function describe(db: Database.Database): Copy {
  const schemaVersion = schemaVersionOf(db);
  return {
    schemaVersion,
    payments:
      schemaVersion > 0 ? (db.prepare("SELECT count(*) FROM payments").pluck().get() as number) : 0,
    derivationCounter:
      schemaVersion > 0
        ? ((db
            .prepare("SELECT value FROM counters WHERE name = 'derivation_index'")
            .pluck()
            .get() as number | undefined) ?? 0)
        : 0,
  };
}

/**
 * Copies the live database at `path` to `to`, online: the daemon keeps
 * running and writing. Refuses an existing `to` unless `force`. Reports
 * progress as pages copied of the total.
 */
export async function backupDatabase({
  path,
  to,
  force = false,
  onProgress,
}: {
  path: string;
  to: string;
  force?: boolean;
  onProgress?: (copied: number, total: number) => void;
}): Promise<Copy & { bytes: number }> {
  if (resolve(to) === resolve(path)) {
    throw new BackupError(`${to} is the database itself: back it up to another file`);
  }
  if (existsSync(to) && !force) {
    throw new BackupError(`${to} exists: pass --force to replace it`);
  }
  if (!existsSync(dirname(to))) {
    throw new BackupError(`${dirname(to)} does not exist: create the folder first`);
  }
  // NOTE: beside the target, so the final rename stays on one file system (atomic).
  const temp = join(dirname(to), `.${basename(to)}.tmp-${process.pid}`);
  removeWithSidecars(temp);
  // Pages are copied, not rows: an older schema is fine (a backup before an upgrade).
  const db = openDatabase({ path, migrate: false, allowOlder: true });
  try {
    db.exec("BEGIN");
    // The first read starts the snapshot: everything committed before it is in the copy.
    schemaVersionOf(db);
    const { totalPages } = await db.backup(temp, {
      progress({ totalPages, remainingPages }) {
        onProgress?.(totalPages - remainingPages, totalPages);
        return STEP_PAGES;
      },
    });
    onProgress?.(totalPages, totalPages);
    db.exec("COMMIT");
    db.close();

    const copy = new Database(temp, { fileMustExist: true });
    let facts: Copy;
    try {
      // One self-contained file: no -wal beside it to lose when it is moved.
      copy.pragma("journal_mode = DELETE");
      const problems = integrityProblems(copy);
      if (problems) throw new BackupError(`the copy fails PRAGMA integrity_check: ${problems}`);
      facts = describe(copy);
    } finally {
      copy.close();
    }
    fsyncPath(temp);
    renameSync(temp, to);
    fsyncDir(dirname(to));
    return { ...facts, bytes: statSync(to).size };
  } catch (error) {
    if (db.open) {
      if (db.inTransaction) db.exec("ROLLBACK");
      db.close();
    }
    removeWithSidecars(temp);
    throw error;
  }
}

export type RestoreResult = Copy & {
  /** Where the database that was replaced is kept; undefined if there was none. */
  previous: string | undefined;
  /** Set when the replaced database had handed out more addresses than the backup knew. */
  counterRaised: { from: number; to: number } | undefined;
};

/**
 * Checks the backup at `from` (integrity, schema version, chain and token),
 * then, holding the daemon's lock, replaces the database at `path` with it
 * and keeps the replaced one as `<path>.before-restore-<time>`.
 *
 * NOTE: the derivation counter never goes back. A backup older than the
 * database it replaces knows fewer payments; its counter would hand out
 * again deposit addresses that shoppers were already given. The restored
 * counter is raised to the replaced database's.
 */
export async function restoreDatabase({
  path,
  from,
  networks,
  named = false,
  now = new Date(),
}: {
  path: string;
  from: string;
  /** The networks of the config: a backup's cursor of each must be for its chain and token. */
  networks: readonly BackupNetwork[];
  /** Messages name the network (a config with `networks`). */
  named?: boolean;
  now?: Date;
}): Promise<RestoreResult> {
  if (resolve(from) === resolve(path)) {
    throw new BackupError(`${from} is the database itself: restore from a backup of it`);
  }
  if (!existsSync(from)) throw new BackupError(`no backup at ${from}`);
  if (!existsSync(dirname(path))) {
    throw new BackupError(`${dirname(path)} (the folder of database.path) does not exist`);
  }
  checkBackup({ from, networks, named });

  const lock = lockDatabase({ path, command: "restore" });
  const temp = `${path}.restore-tmp`;
  try {
    removeWithSidecars(temp);
    const source = new Database(from, { readonly: true, fileMustExist: true });
    try {
      await source.backup(temp);
    } finally {
      source.close();
    }
    const copy = new Database(temp, { fileMustExist: true });
    let facts: Copy;
    let current: ReturnType<typeof settleCurrent> | undefined;
    let counterRaised: RestoreResult["counterRaised"];
    try {
      copy.pragma("journal_mode = DELETE");
      const problems = integrityProblems(copy);
      if (problems) {
        throw new BackupError(`the copy of ${from} fails PRAGMA integrity_check: ${problems}`);
      }
      facts = describe(copy);
      current = existsSync(path) ? settleCurrent(path) : undefined;
      if (current && current.derivationCounter > facts.derivationCounter) {
        copy
          .prepare("UPDATE counters SET value = ? WHERE name = 'derivation_index'")
          .run(current.derivationCounter);
        counterRaised = { from: facts.derivationCounter, to: current.derivationCounter };
        facts = { ...facts, derivationCounter: current.derivationCounter };
      }
    } finally {
      copy.close();
    }
    if (current) {
      // Same owner and mode as the database it replaces: the daemon's user must open it.
      chmodSync(temp, current.mode);
      try {
        chownSync(temp, current.uid, current.gid);
      } catch {
        // Not root: the file is ours, as the replaced one was if we could replace it.
      }
    }
    fsyncPath(temp);
    let previous: string | undefined;
    if (current) {
      previous = `${path}.before-restore-${now.toISOString().replace(/[-:]|\.\d+/g, "")}`;
      // NOTE: a hard link, so that `path` never stops existing: a daemon
      // started on a missing path would create an empty database and hand
      // out index 0 again.
      try {
        linkSync(path, previous);
      } catch {
        copyFileSync(path, previous);
      }
    }
    // No WAL or shared-memory file of the old database may outlive it: SQLite
    // would apply that WAL to the new file.
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
    renameSync(temp, path);
    fsyncDir(dirname(path));
    return { ...facts, previous, counterRaised };
  } catch (error) {
    removeWithSidecars(temp);
    throw error;
  } finally {
    lock.release();
  }
}

/** A network a backup must have been written for (if it scanned it): its name, chain and token. */
export type BackupNetwork = { name: string; chainId: number; token: string };

/** Refuses a backup that is damaged, from a newer 0xbtcpay, not ours, or for another chain. */
function checkBackup({
  from,
  networks,
  named,
}: {
  from: string;
  networks: readonly BackupNetwork[];
  named: boolean;
}) {
  let db: Database.Database;
  try {
    db = new Database(from, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new BackupError(`cannot open ${from}: ${errorMessage(error)}`);
  }
  try {
    let problems: string | undefined;
    let version: number;
    try {
      problems = integrityProblems(db);
      version = schemaVersionOf(db);
    } catch (error) {
      // The check itself may stop on damage it cannot walk past.
      const corrupt = (error as { code?: unknown }).code === "SQLITE_CORRUPT";
      throw new BackupError(
        corrupt
          ? `${from} fails PRAGMA integrity_check: ${errorMessage(error)}`
          : `${from} is not a readable SQLite database: ${errorMessage(error)}`,
      );
    }
    if (problems) throw new BackupError(`${from} fails PRAGMA integrity_check: ${problems}`);
    if (version === 0) throw new BackupError(`${from} is not a 0xbtcpay database`);
    const newest = newestSchemaVersion();
    if (version > newest) throw new SchemaTooNewError({ path: from, version, newest });
    // Before migration 0007 the one cursor row was the single chain's.
    const cursors = (
      version >= 7
        ? db.prepare("SELECT network, chain_id, token FROM chain_cursor").all()
        : db.prepare("SELECT 'ethereum' AS network, chain_id, token FROM chain_cursor").all()
    ) as Array<{ network: string; chain_id: number; token: string }>;
    for (const { name, chainId, token } of networks) {
      const cursor = cursors.find((row) => row.network === name);
      if (cursor && (cursor.chain_id !== chainId || cursor.token !== token)) {
        throw new BackupError(
          `${from} was written for chain ${cursor.chain_id} token ${cursor.token}${named ? ` (network ${name})` : ""}, not chain ${chainId} token ${token} (the config)`,
        );
      }
    }
  } finally {
    db.close();
  }
}

/**
 * Folds the WAL of the database at `path` into its file and takes it out of
 * WAL mode, so that the file alone is the whole database (to keep aside);
 * returns its counter, mode and owner. Fails if another process has it open.
 */
function settleCurrent(path: string): {
  derivationCounter: number;
  mode: number;
  uid: number;
  gid: number;
} {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true });
  } catch (error) {
    throw new BackupError(
      `cannot open the current database ${path} to keep it aside (${errorMessage(error)}): move ${path} and its -wal and -shm files away by hand, then restore again`,
    );
  }
  try {
    db.pragma("busy_timeout = 0");
    let counter: number;
    try {
      db.pragma("wal_checkpoint(TRUNCATE)");
      // NOTE: leaving WAL mode needs the only connection: it fails while any
      // other process has the file open (a daemon older than the lock file).
      const mode = db.pragma("journal_mode = DELETE", { simple: true });
      if (mode !== "delete")
        throw Object.assign(new Error(`journal_mode stayed ${String(mode)}`), {
          code: "SQLITE_BUSY",
        });
      counter = schemaVersionOf(db) > 0 ? describe(db).derivationCounter : 0;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new BackupError(
        code === "SQLITE_BUSY" || code === "SQLITE_LOCKED"
          ? `the current database ${path} is in use by another process: stop it first`
          : `cannot keep the current database ${path} aside (${errorMessage(error)}): move ${path} and its -wal and -shm files away by hand, then restore again`,
      );
    }
    const { mode, uid, gid } = statSync(path);
    return { derivationCounter: counter, mode: mode & 0o7777, uid, gid };
  } finally {
    db.close();
  }
}
