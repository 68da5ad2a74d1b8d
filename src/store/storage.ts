/**
 * The storage the payment logic depends on: its queries (payments,
 * transfers, cursors, the derivation counter, the outbox), a way to run
 * them in one transaction, and a version that changes on any write (for
 * the status.json cache). src/payments/ sees this interface only, never a
 * database handle; SQLite (below) and PostgreSQL (store/postgres/storage.ts)
 * implement it with the same behaviour.
 *
 * Every query is asynchronous, as PostgreSQL needs. A transaction is an
 * async function: each query it makes through `payments` or `events`, on
 * any path it awaits, joins it (AsyncLocalStorage carries it); a nested
 * `transaction` is a savepoint. A transaction holds database work only
 * (no RPC, no HTTP).
 */
import { createTaskContext } from "../internal/context.ts";
import { createEventStore, type EventStore } from "./events.ts";
import { type Db, probeWritable, type WriteProbe } from "./index.ts";
import { createPaymentStore, type PaymentStore } from "./payments.ts";

/** `T`'s methods, each resolving what the synchronous one returns. */
export type Async<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

/** The payment queries (store/payments.ts documents each). */
export type PaymentQueries = Async<PaymentStore>;
/** The postback outbox queries (store/events.ts documents each). */
export type EventQueries = Async<EventStore>;

/** How long the write probe waits for another process's lock (a CLI command's). */
export const DB_PROBE_BUSY_TIMEOUT_MS = 100;

/** What another replica committed: the payments it changed, and whether a head moved. */
export type ExternalChange = { ids: readonly string[]; head: boolean };

export type Storage = {
  backend: "sqlite" | "postgres";
  payments: PaymentQueries;
  events: EventQueries;
  /**
   * Runs `fn` in one transaction and resolves what it resolved once
   * committed; rolls back if it rejects. Nested: a savepoint. A query
   * that fails (a unique order_id taken) leaves a PostgreSQL transaction
   * unusable up to its innermost savepoint: run such a query in a nested
   * transaction to carry on after catching its error. Nested transactions
   * of one transaction run one after another, not side by side.
   */
  transaction<R>(fn: () => Promise<R>): Promise<R>;
  /**
   * Inside a transaction: tells the other replicas, when it commits, which
   * payments it changed (PostgreSQL NOTIFY). Nothing on SQLite: one process.
   */
  announce(change: ExternalChange): Promise<void>;
  /**
   * Subscribes to other replicas' commits (PostgreSQL LISTEN): a nudge, the
   * database stays the truth. Returns the unsubscribe function.
   */
  onExternalChange(listener: (change: ExternalChange) => void): () => void;
  /** A value that changes whenever anything (this process or another) writes. */
  dataVersion(): Promise<string>;
  /**
   * The same value without waiting, when it can be had so (the status.json
   * hot path); undefined when not (SQLite: a transaction holds the
   * connection; PostgreSQL: not listening, so nothing may be cached).
   */
  dataVersionNow(): string | undefined;
  /** Whether the database takes writes now (/readyz), without writing. */
  writable(): Promise<WriteProbe>;
};

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
