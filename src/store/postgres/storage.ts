/**
 * The Storage interface (store/storage.ts) on PostgreSQL, shared by every
 * replica of the daemon: the same queries and behaviour as the SQLite
 * implementation (postgres/payments.ts, postgres/events.ts), transactions
 * on pooled connections, and a change feed (NOTIFY at commit, LISTEN on a
 * connection of its own) that tells each replica what the others wrote.
 *
 * A transaction holds one pooled connection, carried to its queries by
 * AsyncLocalStorage; a nested one is a savepoint; queries outside any go to
 * the pool (each its own transaction). Unlike SQLite, transactions run at
 * once, side by side (READ COMMITTED): what one transaction must decide
 * alone it locks (`allocateIndex` the counter row, `lockPayment` the
 * payment). A statement that fails aborts the transaction up to its
 * innermost savepoint: run one that may fail (an insert that may hit a
 * unique order_id) in a nested transaction, and carry on after it. Nested
 * transactions of one transaction run one after another (awaited, not
 * side by side in a Promise.all: they share one connection).
 */
import type pg from "pg";
import type { Clock } from "../../internal/clock.ts";
import { createTaskContext } from "../../internal/context.ts";
import { errorMessage } from "../../internal/errors.ts";
import type { Logger } from "../../internal/logger.ts";
import type { ExternalChange, Storage } from "../storage.ts";
import { type ChangeListener, listenForChanges } from "./changes.ts";
import { createPostgresEventQueries } from "./events.ts";
import type { Connections, PostgresDb, Queryable } from "./index.ts";
import { createPostgresPaymentQueries } from "./payments.ts";
import { CHANGES_CHANNEL, type ChangeNotice, changePayloads, notifyChanged } from "./queries.ts";

/** "Something was written" (no ids, no head) for the other replicas, then the commit. */
const NUDGE_AND_COMMIT = `NOTIFY ${CHANGES_CHANNEL}, '${changePayloads({ ids: [], head: false })[0]}'; COMMIT`;

/** How long /readyz's database probe waits for the server. */
const PROBE_TIMEOUT_MS = 2_000;

export type PostgresStorage = Storage & {
  /** Stops listening and closes the pool. */
  close(): Promise<void>;
  /** Whether the LISTEN connection is up (it starts on the first `dataVersion` or `onExternalChange`). */
  listening(): boolean;
};

type Tx = {
  client: pg.PoolClient;
  /** Savepoints open now (the name of the next one). */
  savepoints: number;
  /** Whether it wrote: the others must hear of it. */
  wrote: boolean;
  /** Whether it announced a change (then no "something was written" is needed). */
  announced: boolean;
  /** Committed or rolled back: a query still carrying it runs outside, as on SQLite. */
  ended: boolean;
};

/** The server process id of a pooled client (pg sets it on connect; not in its types). */
function backendPid(client: pg.PoolClient): number | undefined {
  return (client as unknown as { processID?: number | null }).processID ?? undefined;
}

/**
 * The PostgreSQL storage on `db` (store/postgres/index.ts `openPostgres`).
 * `url` is the same database's, for the LISTEN connection; `close()` ends
 * both. Nothing connects for LISTEN until the first `dataVersion()` or
 * `onExternalChange()`, so a CLI command that never asks opens no extra
 * connection.
 */
export function createPostgresStorage({
  db,
  url,
  clock,
  logger,
  retryIntervalMs = 1_000,
}: {
  db: PostgresDb;
  url: string;
  clock: Clock;
  logger?: Logger | undefined;
  /** How long the LISTEN connection waits before reconnecting. */
  retryIntervalMs?: number;
}): PostgresStorage {
  const log = logger?.child({ module: "store" });
  const current = createTaskContext<Tx>();
  const pool = db.pool;

  /**
   * NOTE: the data version costs no query. It is a counter that this
   * process bumps on each of its own writing commits and on every
   * notification from another replica; every writing commit of any
   * replica notifies (`transaction`, `write`), so while LISTEN is up the
   * counter moves on any write.
   * While it is down (or not yet up) nudges can be missed: every call then
   * returns a value never seen before ("down:" and an ever-new count), so
   * nothing cached meanwhile is reused; and each reconnect bumps the
   * counter, as nudges may have been missed while it was down. What a
   * replica commits reaches the others a few milliseconds later: their
   * caches may serve the previous data that long.
   */
  let version = 0;
  /** The count behind the versions handed out while not listening. */
  let fresh = 0;

  /** The transaction the caller is in, if it is still open. */
  function openTx(): Tx | undefined {
    const tx = current.get();
    return tx === undefined || tx.ended ? undefined : tx;
  }

  /** Where a query runs: the caller's transaction, else the pool. */
  function connection(): Queryable {
    return openTx()?.client ?? pool;
  }

  const read = {
    query: (text: string, values?: unknown[]) => connection().query(text, values),
  } as Queryable;

  const write = {
    async query(text: string, values?: unknown[]) {
      const tx = openTx();
      if (tx !== undefined) {
        tx.wrote = true;
        return await tx.client.query(text, values);
      }
      const result = await pool.query(text, values);
      // Committed on its own: the others hear of it now.
      await writtenAlone();
      return result;
    },
  } as Queryable;

  /** After a write committed on its own: a new version here, a nudge to the others. */
  async function writtenAlone(): Promise<void> {
    version++;
    try {
      await notifyChanged(pool, { ids: [], head: false });
    } catch (error) {
      // The write is committed: the caller must not take it for failed.
      log?.warn({ err: error }, "could not tell the other replicas of a write");
    }
  }

  async function savepoint<R>(tx: Tx, fn: () => Promise<R>): Promise<R> {
    const name = `sp${++tx.savepoints}`;
    // PostgreSQL drops the NOTIFYs of a savepoint rolled back: then the
    // commit must nudge the others itself again.
    const announced = tx.announced;
    try {
      await tx.client.query(`SAVEPOINT ${name}`);
      let result: R;
      try {
        result = await fn();
      } catch (error) {
        try {
          await tx.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
          await tx.client.query(`RELEASE SAVEPOINT ${name}`);
          tx.announced = announced;
        } catch {
          // The connection is gone or the transaction aborted: the outer
          // transaction's ROLLBACK (or the release of a broken client) ends it.
        }
        throw error;
      }
      await tx.client.query(`RELEASE SAVEPOINT ${name}`);
      return result;
    } finally {
      tx.savepoints--;
    }
  }

  async function transaction<R>(fn: () => Promise<R>): Promise<R> {
    const outer = openTx();
    if (outer !== undefined) return await savepoint(outer, fn);
    const client = await pool.connect();
    const tx: Tx = { client, savepoints: 0, wrote: false, announced: false, ended: false };
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await current.run(tx, fn);
      // NOTE: every writing commit notifies, named or not: that is how the
      // other replicas' dataVersion() changes on any write.
      // The nudge rides with the COMMIT (one round trip: a constant payload
      // in the simple query protocol).
      await client.query(tx.wrote && !tx.announced ? NUDGE_AND_COMMIT : "COMMIT");
      return result;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch {
        // A connection that cannot roll back is not given back to the pool.
        broken = true;
      }
      throw error;
    } finally {
      tx.ended = true;
      // After a COMMIT that failed on the way back too: a new version costs
      // only a cache miss, a missed one would serve stale data.
      if (tx.wrote || tx.announced) version++;
      client.release(broken);
    }
  }

  async function announce(change: ExternalChange): Promise<void> {
    const tx = openTx();
    if (tx === undefined) {
      // Outside a transaction: nothing to wait for, the others hear of it now.
      await notifyChanged(pool, change);
      return;
    }
    tx.announced = true;
    // Transactional NOTIFY: delivered at COMMIT, dropped on ROLLBACK.
    await notifyChanged(tx.client, change);
  }

  // The change feed.
  const subscribers = new Set<(change: ExternalChange) => void>();
  /** This process's pooled connections: their notifications are our own commits. */
  const ownBackends = new Set<number>();
  // NOTE: on every checkout, not only on connect: the pool may hold
  // clients from before this storage (openPostgres's migration).
  pool.on("acquire", (client) => {
    const pid = backendPid(client);
    if (pid !== undefined) ownBackends.add(pid);
  });
  pool.on("remove", (client) => {
    const pid = backendPid(client);
    if (pid !== undefined) ownBackends.delete(pid);
  });

  function tell(change: ExternalChange): void {
    for (const subscriber of subscribers) {
      try {
        subscriber(change);
      } catch (error) {
        log?.error({ err: error }, "a change subscriber threw");
      }
    }
  }

  function heard(notice: ChangeNotice, sender: number): void {
    // Our own commits bumped the version already, and their writer knows.
    if (ownBackends.has(sender)) return;
    version++;
    if ("all" in notice) tell({ ids: [], head: true });
    else if (notice.ids.length > 0 || notice.head) tell(notice);
  }

  let listener: ChangeListener | undefined;
  const stop = new AbortController();
  let running: Promise<void> | undefined;

  function startListening(): void {
    if (listener !== undefined || stop.signal.aborted) return;
    listener = listenForChanges({
      url,
      clock,
      retryIntervalMs,
      onChange: heard,
      onReconnect() {
        // Nudges may have been missed while the connection was down.
        version++;
        tell({ ids: [], head: true });
      },
      onError: (error) => log?.warn({ err: error }, "change feed connection lost; reconnecting"),
    });
    const started = listener;
    // Outside any transaction the caller is in: the feed outlives it.
    running = current.exit(() => started.run(stop.signal));
  }

  async function dataVersion(): Promise<string> {
    startListening();
    return listener?.listening() ? `${version}` : `down:${++fresh}`;
  }

  const connections: Connections = { read, write, transaction };
  return {
    backend: "postgres",
    payments: createPostgresPaymentQueries(connections),
    events: createPostgresEventQueries(connections),
    transaction,
    announce,
    onExternalChange(subscriber) {
      startListening();
      subscribers.add(subscriber);
      return () => {
        subscribers.delete(subscriber);
      };
    },
    dataVersion,
    dataVersionNow() {
      startListening();
      return listener?.listening() ? `${version}` : undefined;
    },
    async writable() {
      // NOTE: a server that is down, or a standby (read-only), fails; the
      // probe gives up after PROBE_TIMEOUT_MS rather than hang /readyz.
      let timer: NodeJS.Timeout | undefined;
      try {
        const { rows } = await Promise.race([
          pool.query<{ primary: boolean }>("SELECT NOT pg_is_in_recovery() AS primary"),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)),
              PROBE_TIMEOUT_MS,
            );
          }),
        ]);
        return rows[0]?.primary
          ? { ok: true }
          : { ok: false, error: "the server is a read-only standby" };
      } catch (error) {
        return { ok: false, error: errorMessage(error) };
      } finally {
        clearTimeout(timer);
      }
    },
    listening: () => listener?.listening() ?? false,
    async close() {
      stop.abort();
      await running;
      await db.close();
    },
  };
}
