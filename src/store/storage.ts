/**
 * The storage the payment logic depends on: its queries (payments,
 * transfers, cursors, the derivation counter, the outbox), a way to run
 * them in one transaction, and a version that changes on any write (for
 * the status.json cache). src/payments/ sees this interface only, never a
 * database handle, so a second backend (PostgreSQL, ARCHITECTURE.md) is a
 * second implementation of it.
 *
 * NOTE: the interface is synchronous, as the SQLite store is; the
 * PostgreSQL backend needs it asynchronous, which is the next step of
 * issue 14 and not done yet.
 */
import { createEventStore, type EventStore } from "./events.ts";
import type { Db } from "./index.ts";
import { createPaymentStore, type PaymentStore } from "./payments.ts";

/**
 * `fn` made a transaction: calling it runs `fn` in one (a nested call, a
 * savepoint); `immediate` takes the write lock at the start.
 */
export type StorageTransaction<A extends unknown[], R> = {
  (...args: A): R;
  immediate(...args: A): R;
};

export type Storage = {
  payments: PaymentStore;
  events: EventStore;
  /** `fn` as a transaction that holds database work only. */
  transaction<A extends unknown[], R>(fn: (...args: A) => R): StorageTransaction<A, R>;
  /** A value that changes whenever anything (this process or another) writes. */
  dataVersion(): string;
};

/** The SQLite implementation, on a better-sqlite3 connection. */
export function createSqliteStorage(db: Db): Storage {
  // NOTE: total_changes() counts this connection's writes, data_version the
  // other connections' (CLI commands): together they change on any write.
  const versionQuery = db
    .prepare("SELECT total_changes() || ':' || data_version FROM pragma_data_version()")
    .pluck();
  return {
    payments: createPaymentStore(db),
    events: createEventStore(db),
    transaction: (fn) => db.transaction(fn),
    dataVersion: () => versionQuery.get() as string,
  };
}
