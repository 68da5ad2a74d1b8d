/**
 * The payment logic, the only place that decides what a payment is. Its
 * parts, one job each: `create` (ids, derivation index, order_id
 * idempotency, group commit), `lifecycle` (the pure rule: transfers +
 * deadline + cancel → status, flags, amounts, events), `transitions`
 * (applies it to stored rows), `sink` (chain batches and rewinds),
 * `deadlines` (the expiry sweep), `views` (status.json and the private
 * rows, from stored fields) and `outbox` (events honouring the opt-in).
 * Callers use the narrow API below.
 */
import type { AddressDeriver } from "../addresses/index.ts";
import type { ChainSink } from "../chain/types.ts";
import type { Clock } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import { createEventStore } from "../store/events.ts";
import type { Db } from "../store/index.ts";
import { createPaymentStore, type PaymentRow } from "../store/payments.ts";
import { type ChangeListener, createChangeFeed } from "./changes.ts";
import { type Created, createPaymentCreator, type NewPayment } from "./create.ts";
import { createDeadlineSweep, type DeadlineSweep } from "./deadlines.ts";
import { PaymentAlreadyPaidError, PaymentNotFoundError } from "./errors.ts";
import { generatePaymentId, type IdGenerator } from "./ids.ts";
import { DEFAULT_EVENT_TYPES, type EventType } from "./lifecycle.ts";
import { type ListQuery, listPayments } from "./list.ts";
import { createOutbox, type Outbox } from "./outbox.ts";
import { createPaymentSink } from "./sink.ts";
import { createTallies, type PaymentTallies } from "./tallies.ts";
import { createTransitions } from "./transitions.ts";
import {
  type CheckoutView,
  createPaymentViews,
  type PaymentDetail,
  type StatusView,
} from "./views.ts";

export type { ChangeListener, PaymentChange } from "./changes.ts";
export type { Created, NewPayment } from "./create.ts";
export {
  DEFAULT_EVENT_TYPES,
  EVENT_TYPES,
  type EventType,
  PAYMENT_STATUSES,
  type PaymentStatus,
} from "./lifecycle.ts";
export type { Outbox } from "./outbox.ts";
export type { PaymentTallies } from "./tallies.ts";
export type { CheckoutView, PaymentDetail, StatusView, TransferView } from "./views.ts";

/** Where the scan stands: the last block fully recorded and the newest head seen. */
export type ScanPosition = { blockNumber: number; head: number };

export type Payments = {
  create(params: NewPayment): Created;
  /** `create` under group commit: resolves once durably committed. */
  createDurably(params: NewPayment): Promise<Created>;
  get(id: string): PaymentRow | undefined;
  getByOrderId(orderId: string): PaymentRow | undefined;
  /**
   * Cancels payment `id` unless it is paid; cancelling again changes
   * nothing. Returns the payment's row. Throws PaymentNotFoundError or
   * PaymentAlreadyPaidError.
   */
  cancel(id: string): PaymentRow;
  view(id: string): StatusView | undefined;
  /** status.json's body (undefined: no such payment), cached until any database write. */
  statusJson(id: string): string | undefined;
  /** status.json's bodies of several payments in a few queries (unknown ids left out). */
  statusJsonMany(ids: readonly string[]): Map<string, string>;
  /** Views and postback events of rows, in a bounded number of queries. */
  details(rows: readonly PaymentRow[]): PaymentDetail[];
  /** The hosted checkout page's view: status.json's, plus description and redirect URLs. */
  checkout(id: string): CheckoutView | undefined;
  /** One page of payments newest first, with their details. */
  list(query: ListQuery): { payments: PaymentDetail[]; nextCursor: string | undefined };
  scanPosition(): ScanPosition | undefined;
  /**
   * Payments by status and the transitions since start, from memory (no
   * query): seeded once at start, moved by each commit (metrics).
   */
  tallies(): PaymentTallies;
  /** The chain watcher's consumer. */
  sink: ChainSink;
  /** The expiry sweep (the daemon runs `deadlines.run`). */
  deadlines: DeadlineSweep;
  /** The postback outbox, for the sender and the redelivery tools. */
  outbox: Outbox;
  /**
   * Subscribes to the payments each commit changed, told right after the
   * commit (live checkout streams). Returns the unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void;
};

export function createPayments({
  db,
  deriver,
  clock,
  logger,
  chainId,
  token,
  decimals,
  requiredConfirmations,
  expiresAfterSeconds,
  monitorForSeconds = 7 * 86_400,
  keepBlocks = 256,
  defaultEvents = DEFAULT_EVENT_TYPES,
  generateId = generatePaymentId,
  onEvents = () => {},
  onGroupCommit = () => {},
}: {
  db: Db;
  /** With `prefetch` (an address pool), told the next index after each create. */
  deriver: AddressDeriver & { prefetch?(nextIndex: number): void };
  clock: Clock;
  logger: Logger;
  chainId: number;
  token: string;
  decimals: number;
  requiredConfirmations: number;
  expiresAfterSeconds: number;
  /** How long after expiry late funds to an address are still recorded. */
  monitorForSeconds?: number;
  /** Recent block headers kept for reorg checks. */
  keepBlocks?: number;
  /** `postbacks.events`: the events of a payment that did not choose its own. */
  defaultEvents?: readonly EventType[];
  generateId?: IdGenerator;
  /** Called after a commit that queued postback events. */
  onEvents?: () => void;
  /** Called after each group commit of start_payment (a burst of checkouts is under way). */
  onGroupCommit?: () => void;
}): Payments {
  const store = createPaymentStore(db);
  const events = createEventStore(db);
  const log = logger.child({ module: "payments" });
  const tallies = createTallies({ byStatus: store.countByStatus() });
  const changes = createChangeFeed({
    onListenerError: (error) => log.error({ err: error }, "a change listener failed"),
    onTransitions: (transitions) => tallies.transitioned(transitions),
  });
  const transitions = createTransitions({
    store,
    events,
    requiredConfirmations,
    defaultEvents,
    changes,
    logger,
  });
  const deadlines = createDeadlineSweep({
    db,
    store,
    transitions,
    changes,
    clock,
    logger,
    onEvents,
  });
  const creator = createPaymentCreator({
    db,
    store,
    deriver,
    clock,
    generateId,
    expiresAfterSeconds,
    onCreated: (at, count) => {
      tallies.created(count);
      deadlines.deadlineAdded(at);
    },
    onGroupCommit,
  });
  // NOTE: total_changes() counts this connection's writes, data_version the
  // other connections' (CLI commands): together they change on any write.
  const versionQuery = db
    .prepare("SELECT total_changes() || ':' || data_version FROM pragma_data_version()")
    .pluck();
  const views = createPaymentViews({
    store,
    events,
    dataVersion: () => versionQuery.get() as string,
    decimals,
    requiredConfirmations,
  });

  const cancel = changes.around(
    db.transaction((id: string): { row: PaymentRow; queued: number } => {
      const payment = store.getPayment(id);
      if (!payment) throw new PaymentNotFoundError(`no payment ${id}`);
      if (payment.status === "paid") throw new PaymentAlreadyPaidError(`payment ${id} is paid`);
      if (payment.cancelled_at !== null) return { row: payment, queued: 0 };
      const now = clock.now();
      store.setCancelled({ id, now });
      const queued = transitions.apply(id, store.getCursor()?.head_number ?? 0, now);
      return { row: store.getPayment(id) as PaymentRow, queued };
    }),
  );

  return {
    create: creator.create,
    createDurably: creator.createDurably,
    get: (id) => store.getPayment(id),
    getByOrderId: (orderId) => store.getPaymentByOrderId(orderId),
    cancel(id) {
      const { row, queued } = cancel(id);
      if (queued > 0) onEvents();
      return row;
    },
    view: views.view,
    statusJson: views.statusJson,
    statusJsonMany: views.statusJsonMany,
    details: views.details,
    checkout: views.checkout,
    list(query) {
      const page = listPayments(store, query);
      return { payments: views.details(page.rows), nextCursor: page.nextCursor };
    },
    scanPosition() {
      const cursor = store.getCursor();
      return cursor ? { blockNumber: cursor.block_number, head: cursor.head_number } : undefined;
    },
    tallies: () => tallies.snapshot(),
    sink: createPaymentSink({
      db,
      store,
      transitions,
      changes,
      clock,
      logger,
      chainId,
      token,
      monitorForSeconds,
      keepBlocks,
      onEvents,
    }),
    deadlines,
    outbox: createOutbox({ events, store }),
    onChange: (listener) => changes.subscribe(listener),
  };
}
