/**
 * Creating payments: a fresh id, the next derivation index and its address,
 * order_id idempotency, all in one transaction; and group commit, which
 * puts the creates of one turn of the event loop under one fsync.
 */
import type { AddressDeriver } from "../addresses/index.ts";
import type { Clock } from "../internal/clock.ts";
import type { NewPaymentRow, PaymentQueries, Storage, StoredPayment } from "../store/storage.ts";
import { OrderIdConflictError } from "./errors.ts";
import type { IdGenerator } from "./ids.ts";
import type { EventType } from "./lifecycle.ts";

/** What start_payment asks for; everything after `postbackUrl` is optional. */
export type NewPayment = {
  amount: bigint;
  data: string | null;
  postbackUrl: string | null;
  /** The shop's order id: a second create with it returns the first payment. */
  orderId?: string | null | undefined;
  description?: string | null | undefined;
  returnUrl?: string | null | undefined;
  cancelUrl?: string | null | undefined;
  /** Seconds from now until it expires; default `expiresAfterSeconds`. */
  expiresInSeconds?: number | undefined;
  /** The postback events the shop opts in to for this payment; default the daemon's. */
  postbackEvents?: readonly EventType[] | undefined;
  /**
   * The only networks whose funds count for it (validated by the caller
   * against the daemon's); default: every network the daemon watches.
   */
  networks?: readonly string[] | undefined;
};

export type Created = StoredPayment & { created: boolean };

export type PaymentCreator = {
  /**
   * Creates a payment with a fresh deposit address (index and row in one
   * transaction). With an `orderId` already used for the same amount it
   * returns that payment (`created: false`, no index consumed); for another
   * amount it throws OrderIdConflictError.
   */
  create(params: NewPayment): Promise<Created>;
  /**
   * The same as `create`, but grouped with the other creates of this turn of
   * the event loop into one transaction: one fsync for all of them (group
   * commit). Resolves once the payment is committed, so it is as durable.
   */
  createDurably(params: NewPayment): Promise<Created>;
};

export function createPaymentCreator({
  storage,
  store,
  deriver,
  clock,
  generateId,
  expiresAfterSeconds,
  onCreated,
  onGroupCommit,
  batchesInFlight = 1,
}: {
  storage: Pick<Storage, "transaction">;
  store: PaymentQueries;
  /** With `prefetch` (an address pool), told the next index after each create. */
  deriver: AddressDeriver & { prefetch?(nextIndex: number): void };
  clock: Pick<Clock, "now">;
  generateId: IdGenerator;
  expiresAfterSeconds: number;
  /** Called after the commit of new payments, with the earliest new deadline and how many. */
  onCreated: (earliestDeadline: number, count: number) => void;
  /** Called after each group commit (a burst of checkouts is under way). */
  onGroupCommit: () => void;
  /** Group commits at once: 1 on SQLite (one writer), more on PostgreSQL. */
  batchesInFlight?: number;
}): PaymentCreator {
  const insertPayment = (params: NewPayment) =>
    storage.transaction(async (): Promise<Created> => {
      // NOTE: the order-id lookup and the insert share one transaction, so
      // duplicates (even concurrent ones) get the first payment and consume no index.
      const orderId = params.orderId ?? null;
      if (orderId !== null) {
        const existing = await store.getPaymentByOrderId(orderId);
        if (existing) {
          if (BigInt(existing.amount) !== params.amount) throw new OrderIdConflictError(orderId);
          return { ...existing, created: false };
        }
      }
      const index = await store.allocateIndex();
      return { ...(await store.insertPayment(rowOf(params, index, clock.now()))), created: true };
    });

  /** The row of a new payment at derivation index `index`, created at `now`. */
  function rowOf(params: NewPayment, index: number, now: number): NewPaymentRow {
    return {
      id: generateId(),
      amount: params.amount.toString(),
      derivation_index: index,
      address: deriver.derive(index),
      data: params.data,
      postback_url: params.postbackUrl,
      created_at: now,
      expires_at: now + (params.expiresInSeconds ?? expiresAfterSeconds) * 1000,
      order_id: params.orderId ?? null,
      description: params.description ?? null,
      return_url: params.returnUrl ?? null,
      cancel_url: params.cancelUrl ?? null,
      postback_events:
        params.postbackEvents === undefined ? null : JSON.stringify(params.postbackEvents),
      networks: params.networks === undefined ? null : JSON.stringify(params.networks),
    };
  }

  async function createOne(params: NewPayment): Promise<Created> {
    // A clash of 64 random bits is next to impossible; retry it rather than fail the shop.
    for (let attempt = 0; ; attempt++) {
      try {
        return await insertPayment(params);
      } catch (error) {
        const code = (error as { code?: string }).code;
        // UNIQUE: another connection (a replica) inserted the same order id
        // first; the retry finds it. 23505 is PostgreSQL's unique violation.
        if (
          attempt < 3 &&
          (code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
            code === "SQLITE_CONSTRAINT_UNIQUE" ||
            code === "23505")
        )
          continue;
        throw error;
      }
    }
  }

  type Queued = {
    params: NewPayment;
    resolve(row: Created): void;
    reject(error: unknown): void;
  };
  const queue: Queued[] = [];
  type Result = { row: Created } | { error: unknown };

  /** What a create with `orderId` gets when `existing` holds it already. */
  const sameOrder = (existing: StoredPayment, params: NewPayment): Result =>
    BigInt(existing.amount) === params.amount
      ? { row: { ...existing, created: false } }
      : { error: new OrderIdConflictError(existing.order_id as string) };

  /**
   * A batch in a few statements, whatever its size: the order ids looked
   * up at once, the indexes taken at once (one counter update), the rows
   * inserted at once. On PostgreSQL each statement is a round trip under
   * the counter's row lock, so this is what lets replicas' creates go fast.
   * It rejects if an insert clashes (another replica took an order id
   * meanwhile): the caller then runs the batch one create at a time.
   */
  const insertBatch = (batch: Queued[]) =>
    storage.transaction(async (): Promise<Result[]> => {
      const results: Array<Result | undefined> = batch.map(() => undefined);
      const orderIds = [
        ...new Set(batch.flatMap((item) => (item.params.orderId ? [item.params.orderId] : []))),
      ];
      const existing = new Map(
        (await store.getPaymentsByOrderIds(orderIds)).map((row) => [row.order_id, row]),
      );
      /** The batch's first create of each new order id. */
      const creatorOf = new Map<string, number>();
      const fresh: number[] = [];
      batch.forEach((item, i) => {
        const orderId = item.params.orderId ?? null;
        if (orderId !== null) {
          const found = existing.get(orderId);
          if (found) {
            results[i] = sameOrder(found, item.params);
            return;
          }
          if (creatorOf.has(orderId)) return; // decided once its creator is inserted
          creatorOf.set(orderId, i);
        }
        fresh.push(i);
      });
      if (fresh.length > 0) {
        const first = await store.allocateIndexes(fresh.length);
        const now = clock.now();
        const rows = fresh.map((i, k) => rowOf((batch[i] as Queued).params, first + k, now));
        const inserted = await store.insertPayments(rows);
        fresh.forEach((i, k) => {
          results[i] = { row: { ...(inserted[k] as StoredPayment), created: true } };
        });
      }
      return batch.map((item, i) => {
        const done = results[i];
        if (done) return done;
        const creator = results[creatorOf.get(item.params.orderId as string) as number] as Result;
        return "row" in creator ? sameOrder(creator.row, item.params) : creator;
      });
    });

  // NOTE: each create is a nested transaction (a savepoint), so one failing
  // rolls back alone; the outer commit is the one fsync.
  const insertOneByOne = (batch: Queued[]) =>
    storage.transaction(async () => {
      const results: Result[] = [];
      for (const item of batch) {
        try {
          results.push({ row: await createOne(item.params) });
        } catch (error) {
          results.push({ error });
        }
      }
      return results;
    });

  const insertAll = async (batch: Queued[]): Promise<Result[]> => {
    if (batch.length === 1) return insertOneByOne(batch);
    try {
      return await insertBatch(batch);
    } catch {
      // A clash (rolled back whole, no index taken): one at a time, each
      // retried on its own (see createOne).
      return insertOneByOne(batch);
    }
  };

  /** After a commit: the pool derives ahead, the deadline timer learns the new deadlines. */
  function committed(rows: readonly Created[]) {
    let next = -1;
    let earliest = Number.POSITIVE_INFINITY;
    let created = 0;
    for (const row of rows) {
      next = Math.max(next, row.derivation_index + 1);
      if (row.created) {
        earliest = Math.min(earliest, row.expires_at);
        created++;
      }
    }
    if (next >= 0) deriver.prefetch?.(next);
    if (created > 0) onCreated(earliest, created);
  }

  /** Commits one batch of queued creates and settles each. */
  async function flushBatch(batch: Queued[]) {
    let results: Awaited<ReturnType<typeof insertAll>>;
    try {
      results = await insertAll(batch);
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    const rows: Created[] = [];
    results.forEach((result, i) => {
      const item = batch[i] as Queued;
      if ("row" in result) {
        rows.push(result.row);
        item.resolve(result.row);
      } else {
        item.reject(result.error);
      }
    });
    committed(rows);
    onGroupCommit();
  }

  // NOTE: at most `batchesInFlight` batches commit at once; what queues
  // meanwhile is the next batch (the slower the commit, the larger the
  // group). On PostgreSQL a second batch in flight waits on the counter's
  // row lock inside the server and runs the moment the first commits,
  // instead of a round trip later.
  let flushing = 0;
  let scheduled = false;
  async function flushQueue() {
    scheduled = false;
    flushing++;
    try {
      while (queue.length > 0) await flushBatch(queue.splice(0));
    } finally {
      flushing--;
    }
  }
  function schedule() {
    if (scheduled || flushing >= batchesInFlight) return;
    scheduled = true;
    setImmediate(flushQueue);
  }

  return {
    async create(params) {
      const row = await createOne(params);
      committed([row]);
      return row;
    },
    createDurably(params) {
      return new Promise((resolve, reject) => {
        queue.push({ params, resolve, reject });
        schedule();
      });
    },
  };
}
