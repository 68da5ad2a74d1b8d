/**
 * One process per database: the daemon (and `restore`) hold an exclusive
 * lock for as long as they use the database; a second one is refused.
 *
 * NOTE: the lock is an OS advisory lock (fcntl) that SQLite takes on a
 * sidecar file, `<database>.lock`, a tiny SQLite database of its own: the
 * holder keeps a write transaction open on it (RESERVED lock, rollback
 * journal). The kernel drops the lock when the process dies, kill -9
 * included, so there is no stale lock to clean up and no pid to guess
 * about. The database itself is never locked this way: CLI commands keep
 * reading and writing it while the daemon runs (WAL). A pid file alone
 * could not tell a live holder from a reused pid (in a container every
 * daemon is pid 1), and a lock held by a child process (flock(1)) would
 * outlive a parent killed with -9.
 *
 * The holder also commits who it is (pid, command, start time) to the lock
 * file before it keeps the lock, so a refused process can name it: readers
 * are not blocked by a RESERVED lock. Never delete the lock file while a
 * daemon runs: a new file would be a new, free lock.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { DatabaseLockedError, type LockHolder } from "../../internal/errors.ts";

export type DatabaseLock = {
  /** The lock file beside the database. */
  path: string;
  /** Lets the lock go (closing the connection drops it; so does the process's death). */
  release(): void;
};

/** The sidecar lock file of the database at `path`. */
export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

type HolderRow = { pid: number; command: string; started_at: number; nonce: string };

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}

function readHolder(db: Database.Database): HolderRow | undefined {
  try {
    return db.prepare("SELECT pid, command, started_at, nonce FROM holder WHERE id = 1").get() as
      | HolderRow
      | undefined;
  } catch {
    // No table yet (the holder is between creating the file and writing it).
    return undefined;
  }
}

function holderOf(row: HolderRow | undefined): LockHolder | undefined {
  return row && { pid: row.pid, command: row.command, startedAt: row.started_at };
}

/**
 * Takes the lock of the database at `path` for `command` ("serve",
 * "restore"), waiting up to `waitMs` for a holder that is only probing it.
 * Throws {@link DatabaseLockedError} naming the holder when another process
 * keeps it.
 */
export function lockDatabase({
  path,
  command,
  now = Date.now(),
  waitMs = 1000,
}: {
  path: string;
  command: string;
  now?: number;
  /** How long to wait for the lock: a probe (`doctor`) holds it for microseconds. */
  waitMs?: number;
}): DatabaseLock {
  const lockPath = lockPathOf(path);
  const db = new Database(lockPath);
  const nonce = randomBytes(12).toString("hex");
  const locked = () => new DatabaseLockedError({ path, holder: holderOf(readHolder(db)) });
  try {
    db.pragma(`busy_timeout = ${waitMs}`);
    // NOTE: the write of who holds it is committed, then the lock is taken
    // again and the row checked inside it: whoever passes the check both
    // holds the lock and is the one the file names. Another process can
    // slip in between the two only by taking the lock itself, and then one
    // of us finds the row not its own and tries again, or is refused.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        db.exec("BEGIN IMMEDIATE");
      } catch (error) {
        if (isBusy(error)) throw locked();
        throw error;
      }
      db.exec(`CREATE TABLE IF NOT EXISTS holder (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        pid        INTEGER NOT NULL,
        command    TEXT    NOT NULL,
        started_at INTEGER NOT NULL,
        nonce      TEXT    NOT NULL
      ) STRICT`);
      if (readHolder(db)?.nonce === nonce) {
        return {
          path: lockPath,
          release() {
            if (db.open) db.close();
          },
        };
      }
      db.prepare(
        "INSERT OR REPLACE INTO holder (id, pid, command, started_at, nonce) VALUES (1, ?, ?, ?, ?)",
      ).run(process.pid, command, now, nonce);
      db.exec("COMMIT");
    }
    throw locked();
  } catch (error) {
    if (db.inTransaction) db.exec("ROLLBACK");
    db.close();
    throw error;
  }
}

/**
 * Whether a process holds the lock of the database at `path` now, and who
 * (`holder` is undefined in the instant before a holder has written its
 * name); undefined if nobody does or there is no lock file yet. Takes the
 * lock for an instant when it is free; `lockDatabase` waits that out.
 */
export function heldLock(path: string): { holder: LockHolder | undefined } | undefined {
  const lockPath = lockPathOf(path);
  if (!existsSync(lockPath)) return undefined;
  const db = new Database(lockPath, { fileMustExist: true });
  try {
    db.pragma("busy_timeout = 0");
    try {
      db.exec("BEGIN IMMEDIATE");
    } catch (error) {
      if (!isBusy(error)) throw error;
      return { holder: holderOf(readHolder(db)) };
    }
    db.exec("ROLLBACK");
    return undefined;
  } finally {
    db.close();
  }
}
