/**
 * The Storage interface (store/storage.ts) on SQLite: the payment and
 * outbox queries (./payments.ts, ./events.ts) on one better-sqlite3
 * connection, made asynchronous, and transactions that take the
 * connection for themselves.
 */
import { createTaskContext } from "../../internal/context.ts";
import { type Async, DB_PROBE_BUSY_TIMEOUT_MS, type Storage } from "../storage.ts";
import { createEventStore } from "./events.ts";
import { type Db, probeWritable } from "./index.ts";
import { createPaymentStore } from "./payments.ts";

/**
 * The SQLite implementation, on one better-sqlite3 connection. A
 * transaction takes the connection for itself (BEGIN IMMEDIATE … COMMIT):
 * queries from outside it wait until it ends, so nothing reads what it has
 * not committed, and transactions run one after another in the order asked.
 */
export function createSqliteStorage(db: Db): Storage {
  type Tx = { savepoints: number };
  const current = createTaskContext<Tx>();
  /** The transaction holding the connection, if any. */
  let holder: Tx | undefined;
  /** What waits for the connection, first come first served. */
  const waiting: Array<() => void> = [];

  function release() {
    holder = undefined;
    // A waiting read runs at once and leaves the connection free; a waiting
    // transaction takes it, and the rest wait on.
    while (holder === undefined && waiting.length > 0) (waiting.shift() as () => void)();
  }

  /** Runs the synchronous query `run` when the connection is this caller's to use. */
  function query<R>(run: () => R): Promise<R> {
    if (holder === undefined || holder === current.get()) {
      try {
        return Promise.resolve(run());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise((resolve, reject) => {
      waiting.push(() => {
        try {
          resolve(run());
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  function asyncOf<T extends object>(store: T): Async<T> {
    const out: Record<string, unknown> = {};
    for (const [name, method] of Object.entries(store)) {
      if (typeof method !== "function") continue;
      out[name] = (...args: unknown[]) => query(() => method(...args));
    }
    return out as Async<T>;
  }

  async function transaction<R>(fn: () => Promise<R>): Promise<R> {
    const outer = current.get();
    if (outer !== undefined && outer === holder) {
      const name = `sp${++outer.savepoints}`;
      db.exec(`SAVEPOINT ${name}`);
      try {
        const result = await fn();
        db.exec(`RELEASE ${name}`);
        return result;
      } catch (error) {
        db.exec(`ROLLBACK TO ${name}`);
        db.exec(`RELEASE ${name}`);
        throw error;
      } finally {
        outer.savepoints--;
      }
    }
    const tx: Tx = { savepoints: 0 };
    if (holder === undefined) holder = tx;
    else {
      await new Promise<void>((resolve) =>
        waiting.push(() => {
          holder = tx;
          resolve();
        }),
      );
    }
    try {
      db.exec("BEGIN IMMEDIATE");
      let result: R;
      try {
        result = await current.run(tx, fn);
        db.exec("COMMIT");
      } catch (error) {
        if (db.inTransaction) db.exec("ROLLBACK");
        throw error;
      }
      return result;
    } finally {
      release();
    }
  }

  // NOTE: total_changes() counts this connection's writes, data_version the
  // other connections' (CLI commands): together they change on any write.
  const versionQuery = db
    .prepare("SELECT total_changes() || ':' || data_version FROM pragma_data_version()")
    .pluck();
  return {
    backend: "sqlite",
    payments: asyncOf(createPaymentStore(db)),
    events: asyncOf(createEventStore(db)),
    transaction,
    announce: async () => {},
    onExternalChange: () => () => {},
    dataVersion: () => query(() => versionQuery.get() as string),
    dataVersionNow: () => (holder === undefined ? (versionQuery.get() as string) : undefined),
    writable: async () => probeWritable(db, { busyTimeoutMs: DB_PROBE_BUSY_TIMEOUT_MS }),
  };
}
