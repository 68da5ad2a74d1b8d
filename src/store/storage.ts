/**
 * The storage the payment logic depends on, and what its two backends share:
 * the rows (payments, transfers, blocks, scan cursors, postback events and
 * attempts), the queries over them (a synchronous shape that SQLite
 * implements as it is and an asynchronous one, `PaymentQueries` and
 * `EventQueries`, that src/payments/ calls), a way to run them in one
 * transaction, a version that changes on any write (for the status.json
 * cache), the SQL both backends run word for word, and the reading of
 * numbered migration files. src/payments/ sees this module only, never a
 * database handle. store/sqlite/ (one file, one process) and
 * store/postgres/ (one database, several replicas) implement it with the
 * same behaviour; test/store/storage.test.ts runs the same cases on both.
 *
 * Every query is asynchronous, as PostgreSQL needs. A transaction is an
 * async function: each query it makes through `payments` or `events`, on
 * any path it awaits, joins it (AsyncLocalStorage carries it); a nested
 * `transaction` is a savepoint. A transaction holds database work only
 * (no RPC, no HTTP).
 */
import { readdirSync, readFileSync } from "node:fs";

/**
 * The network of a config with the single `chain` section, and of every row
 * written before there were several (migration 0007).
 */
export const LEGACY_NETWORK = "ethereum";

/** A payment's stored status; written only by src/payments (the lifecycle). */
export type PaymentStatus = "waiting" | "seen" | "paid" | "expired" | "cancelled";

export type PaymentRow = {
  id: string;
  amount: string;
  derivation_index: number;
  address: string;
  data: string | null;
  postback_url: string | null;
  created_at: number;
  expires_at: number;
  seen_at: number | null;
  paid_at: number | null;
  tx_hash: string | null;
  /** Block of the transfer that completes (or, while partial, was last added to) the payment. */
  block_number: number | null;
  paid_amount: string;
  late_amount: string;
  paid_late_at: number | null;
  reorged_after_paid_at: number | null;
  /** The shop's order id (unique when set): start_payment is idempotent on it. */
  order_id: string | null;
  description: string | null;
  return_url: string | null;
  cancel_url: string | null;
  cancelled_at: number | null;
  status: PaymentStatus;
  /** JSON array of the event types the shop opted in to; null: the daemon's default. */
  postback_events: string | null;
};

/** The columns of several networks (migration 0007). */
export type PaymentNetworkColumns = {
  /** JSON array of the networks the payment accepts; null: every network the daemon watches. */
  networks: string | null;
  /** The network of `tx_hash` (the completing transfer); null until paid. */
  network: string | null;
  /** The network of `block_number` (the transfer confirmations are counted from). */
  block_network: string | null;
  /** Base units received on networks the payment does not accept (never counted). */
  wrong_network_amount: string;
};

/** A payment as stored: every column. */
export type StoredPayment = PaymentRow & PaymentNetworkColumns;

/** The fields the lifecycle decides, stored together. */
export type LifecycleFields = Pick<
  StoredPayment,
  | "status"
  | "seen_at"
  | "paid_at"
  | "tx_hash"
  | "block_number"
  | "paid_amount"
  | "late_amount"
  | "paid_late_at"
  | "reorged_after_paid_at"
  | "network"
  | "block_network"
  | "wrong_network_amount"
>;

/** The columns start_payment writes; the rest start empty. */
export type NewPaymentRow = Pick<
  PaymentRow,
  | "id"
  | "amount"
  | "derivation_index"
  | "address"
  | "data"
  | "postback_url"
  | "created_at"
  | "expires_at"
  | "order_id"
  | "description"
  | "return_url"
  | "cancel_url"
  | "postback_events"
> &
  Pick<PaymentNetworkColumns, "networks">;

/** A position in the newest-first listing: the last (created_at, id) already returned. */
export type ListPosition = { created_at: number; id: string };

/** A page of due deadlines: at most `limit`, after the position (expires_at, id) `after`. */
export type DeadlinePage = {
  limit: number;
  after?: { expires_at: number; id: string } | undefined;
};

export type TransferRow = {
  tx_hash: string;
  log_index: number;
  block_number: number;
  block_hash: string;
  from_address: string;
  to_address: string;
  value: string;
  payment_id: string;
  recorded_at: number;
  block_timestamp: number | null;
  /** The network the transfer is on. */
  network: string;
};

export type BlockRow = { number: number; hash: string; parent_hash: string; timestamp: number };

/** One network's scan cursor. */
export type CursorRow = {
  network: string;
  chain_id: number;
  token: string;
  block_number: number;
  block_hash: string | null;
  head_number: number;
  updated_at: number;
};

/**
 * Payments by status: a covering scan of the payments_by_status index (no
 * table row is read), run once at start to seed the in-memory tallies.
 * Exported for the plan test and the bench.
 */
export const COUNT_BY_STATUS_SQL = "SELECT status, count(*) AS count FROM payments GROUP BY status";

export type EventState = "pending" | "delivered" | "failed";

export const EVENT_STATES: readonly EventState[] = ["pending", "delivered", "failed"];

export type EventRow = {
  id: string;
  payment_id: string;
  type: string;
  url: string;
  created_at: number;
  state: EventState;
  /** Every attempt ever made. */
  attempts: number;
  /** Attempts since the event was queued or re-queued: indexes the retry schedule. */
  round_attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
  /** The body as first sent; null until the first attempt. */
  payload: string | null;
  requeued_at: number | null;
};

export type AttemptRow = {
  id: number;
  event_id: string;
  attempted_at: number;
  duration_ms: number;
  status: number | null;
  error: string | null;
};

/**
 * The undelivered queue, read on every metrics scrape. Two subqueries, so
 * each uses its index: the count scans the partial index of pending events
 * (covering: its cost follows the queue, not the history), the oldest is one
 * lookup in events_pending_since, whose expression this repeats word for
 * word (migration 0006). Exported for the plan test and the bench.
 */
export const PENDING_SUMMARY_SQL = `SELECT
  (SELECT count(*) FROM events WHERE state = 'pending') AS count,
  (SELECT min(coalesce(requeued_at, created_at)) FROM events WHERE state = 'pending') AS oldest`;

/**
 * Queries over payments, transfers, the scan cursors (one per network) and
 * the derivation counter. Callers own transactions.
 */
export type PaymentStore = {
  /** Takes the next derivation index. Call inside the transaction that inserts the payment. */
  allocateIndex(): number;
  /**
   * Takes `count` consecutive derivation indexes and returns the first.
   * Call inside the transaction that inserts their payments.
   */
  allocateIndexes(count: number): number;
  /** Inserts payments and returns their whole rows, in the order given. */
  insertPayments(rows: readonly NewPaymentRow[]): StoredPayment[];
  /** The payments holding these order ids (any order; ids of none are left out). */
  getPaymentsByOrderIds(orderIds: readonly string[]): StoredPayment[];
  /** Inserts the payment and returns its whole row (defaults included). */
  insertPayment(row: NewPaymentRow): StoredPayment;
  getPayment(id: string): StoredPayment | undefined;
  /**
   * Reads payment `id` to re-decide it: inside a transaction, no other
   * transaction changes the row until this one ends (PostgreSQL: a row
   * lock; SQLite: a transaction holds the whole database already).
   */
  lockPayment(id: string): StoredPayment | undefined;
  /** Several payments in one query (any order; unknown ids are left out). */
  getPaymentsMany(ids: readonly string[]): StoredPayment[];
  getPaymentByOrderId(orderId: string): StoredPayment | undefined;
  /** Sets cancelled_at unless already set; the caller re-decides the lifecycle. */
  setCancelled(params: { id: string; now: number }): void;
  /**
   * Payments newest first, (created_at, id) descending, strictly after
   * `after` when given; only those in `status` and created at or after
   * `since` (UNIX ms) when given. One query.
   */
  listPayments(params: {
    after: ListPosition | undefined;
    limit: number;
    status?: PaymentStatus | undefined;
    since?: number | undefined;
  }): StoredPayment[];
  /** How many payments have each status (statuses with none are missing). */
  countByStatus(): Partial<Record<PaymentStatus, number>>;
  /**
   * Open (waiting or seen) payments whose deadline is at or before `now`,
   * soonest first, by (expires_at, id): all of them, or with `limit` a page
   * of them that starts after `after` (the last of the page before).
   */
  dueDeadlines(now: number, page?: DeadlinePage): StoredPayment[];
  /** The nearest deadline of an open payment after `now` (UNIX ms), if any. */
  nextDeadline(now: number): number | undefined;
  paymentIdByAddress(address: string): string | undefined;
  /** The payment paying to `address` and its deadline (UNIX ms), if any. */
  paymentWindowByAddress(address: string): { id: string; expires_at: number } | undefined;
  /** Ids of payments that have received their amount but are not paid (confirming). */
  confirmingPaymentIds(): string[];
  /** Stores what the lifecycle decided for payment `id`. */
  updateLifecycle(id: string, fields: LifecycleFields): void;
  /** Records a transfer; false if (tx_hash, log_index) was already recorded. */
  insertTransfer(row: TransferRow): boolean;
  /** A payment's transfers in chain order. */
  transfersOf(paymentId: string): TransferRow[];
  /** The transfers of several payments in one query, each payment's in chain order. */
  transfersOfMany(paymentIds: readonly string[]): Map<string, TransferRow[]>;
  /**
   * Forgets everything of `network` above block `number` (a reorg replaced
   * it) and returns the payments whose transfers went with it.
   */
  forgetAbove(network: string, number: number): string[];
  rememberBlock(network: string, row: BlockRow): void;
  blockHash(network: string, number: number): string | undefined;
  pruneBlocksBelow(network: string, number: number): void;
  moveCursor(
    network: string,
    row: Pick<CursorRow, "block_number" | "block_hash" | "head_number" | "updated_at">,
  ): void;
  /** The scan cursor of `network`; undefined before its first scan. */
  getCursor(network: string): CursorRow | undefined;
  /**
   * The scan cursor of `network`, locked until the transaction ends: a
   * batch moves it only from where it read it (compare-and-set), so a
   * deposed leader writing late finds it moved. SQLite's transactions
   * already run one at a time; on PostgreSQL this is `SELECT … FOR UPDATE`.
   */
  lockCursor(network: string): CursorRow | undefined;
  /** Every network's cursor, oldest first (networks no longer configured included). */
  cursors(): CursorRow[];
  /** The head each network's cursor last recorded. */
  heads(): Map<string, number>;
  /** Creates (or moves) a network's cursor; without `network`, the single chain's. */
  setCursor(
    row: Omit<CursorRow, "network"> & {
      network?: string;
    },
  ): void;
  setHead(network: string, head: number, now: number): void;
};

/**
 * The postback outbox: events written in the same transaction as the state
 * change that causes them, and their delivery state.
 */
export type EventStore = {
  insert(
    row: Pick<EventRow, "id" | "payment_id" | "type" | "url" | "created_at" | "next_attempt_at">,
  ): void;
  get(id: string): EventRow | undefined;
  /** A payment's events in the order they were written. */
  byPayment(paymentId: string): EventRow[];
  /** The events of several payments in one query, each payment's in the order written. */
  byPayments(paymentIds: readonly string[]): Map<string, EventRow[]>;
  /**
   * The first pending event of each payment (a later one waits for it),
   * soonest due first. Due or not: the caller compares next_attempt_at.
   */
  pendingHeads(limit: number): EventRow[];
  /**
   * The undelivered queue: how many events are pending, and since when
   * (UNIX ms) the oldest has waited: its creation, or its re-queue by an
   * operator if later. `oldestAt` is null when none is pending.
   */
  pendingSummary(): { count: number; oldestAt: number | null };
  /** All events, or those in `state`, in the order they were written. */
  list(state?: EventState): EventRow[];
  /**
   * Claims pending event `id` for one delivery attempt, until `leaseUntil`
   * (UNIX ms), and returns its current row; undefined if it is no longer
   * pending or another replica holds it (PostgreSQL: a lease, so a replica
   * that dies mid-delivery lets it go when the lease runs out).
   */
  claim(id: string, now: number, leaseUntil: number): EventRow | undefined;
  /** Stores the body of the first attempt; later attempts send the same bytes. */
  setPayload(id: string, payload: string): void;
  attemptsOf(eventId: string): AttemptRow[];
  /**
   * Records one delivery attempt and the event's new state, atomically.
   * `round_attempts` is the value the attempt started from: if an operator
   * re-queued the event meanwhile, the attempt is recorded but the state
   * is left alone. Returns whether the state was updated.
   */
  recordAttempt(
    attempt: Omit<AttemptRow, "id">,
    outcome: {
      state: EventState;
      round_attempts: number;
      next_attempt_at: number;
      delivered_at: number | null;
    },
  ): boolean;
  /** Puts events back to pending, due at `now`, with a fresh retry schedule. */
  requeue(ids: readonly string[], now: number): void;
};

/** One numbered migration file: `NNNN_name.sql`. */
export type Migration = { version: number; name: string; sql: string };

/** The migrations in `dir` (each backend has its own folder), in order. */
export function readMigrations(dir: string): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: readFileSync(`${dir}${file}`, "utf8"),
    }));
}

/** The newest schema version of `migrations`: the number of the last. */
export function newestSchemaVersion(migrations: readonly Migration[]): number {
  return Math.max(0, ...migrations.map((m) => m.version));
}

/** Whether the database takes writes now, as a probe found it. */
export type WriteProbe = { ok: true } | { ok: false; error: string };

/** `T`'s methods, each resolving what the synchronous one returns. */
export type Async<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

/** The payment queries, as src/payments/ calls them ({@link PaymentStore} documents each). */
export type PaymentQueries = Async<PaymentStore>;
/** The postback outbox queries, as src/payments/ and src/postbacks/ call them ({@link EventStore}). */
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
