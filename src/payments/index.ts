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
import type { Storage } from "../store/storage.ts";
import { LEGACY_NETWORK, type StoredPayment } from "../store/storage.ts";
import { type ChangeListener, createChangeFeed } from "./changes.ts";
import { type Created, createPaymentCreator, type NewPayment } from "./create.ts";
import { createDeadlineSweep, type DeadlineSweep } from "./deadlines.ts";
import { PaymentAlreadyPaidError, PaymentNotFoundError, ScanNotStartedError } from "./errors.ts";
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
  ALL_EVENT_TYPES,
  DEFAULT_EVENT_TYPES,
  EVENT_TYPES,
  type EventType,
  eventTypesOf,
  NETWORK_EVENT_TYPES,
  PAYMENT_STATUSES,
  type PaymentStatus,
} from "./lifecycle.ts";
export type { Outbox } from "./outbox.ts";
export type { PaymentTallies } from "./tallies.ts";
export type { CheckoutView, PaymentDetail, StatusView, TransferView } from "./views.ts";

/** Where a network's scan stands: the last block fully recorded and the newest head seen. */
export type ScanPosition = {
  blockNumber: number;
  head: number;
  /** When the scan last moved the cursor's row (a batch or a new head), UNIX ms. */
  updatedAt: number;
};

/** A network as the payment logic knows it. */
export type PaymentNetwork = {
  /** "ethereum", "polygon": how the database, the wire and start_payment name it. */
  name: string;
  chainId: number;
  token: string;
  /** Confirmations a transfer on it needs. */
  confirmations: number;
  /** Its recent block headers kept for reorg checks; default `keepBlocks`. */
  keepBlocks?: number | undefined;
};

/**
 * How long a create waits for the first scan positions; then it fails
 * (ScanNotStartedError) if no network has one.
 */
const SCAN_START_WAIT_MS = 5_000;
const SCAN_START_POLL_MS = 50;

export type Payments = {
  /**
   * Creates a payment in its own transaction. Like every read and write
   * below it is asynchronous, as a PostgreSQL store needs; on SQLite it
   * resolves a result computed synchronously.
   */
  create(params: NewPayment): Promise<Created>;
  /** `create` under group commit: resolves once durably committed. */
  createDurably(params: NewPayment): Promise<Created>;
  get(id: string): Promise<StoredPayment | undefined>;
  getByOrderId(orderId: string): Promise<StoredPayment | undefined>;
  /**
   * Cancels payment `id` unless it is paid; cancelling again changes
   * nothing. Resolves to the payment's row. Rejects with PaymentNotFoundError
   * or PaymentAlreadyPaidError.
   */
  cancel(id: string): Promise<StoredPayment>;
  view(id: string): Promise<StatusView | undefined>;
  /** status.json's body (undefined: no such payment), cached until any database write. */
  statusJson(id: string): Promise<string | undefined>;
  /** status.json's body from the cache, without waiting; undefined: ask `statusJson`. */
  cachedStatusJson(id: string): string | undefined;
  /** status.json's bodies of several payments in a few queries (unknown ids left out). */
  statusJsonMany(ids: readonly string[]): Promise<Map<string, string>>;
  /** Views and postback events of rows, in a bounded number of queries. */
  details(rows: readonly StoredPayment[]): Promise<PaymentDetail[]>;
  /** The hosted checkout page's view: status.json's, plus description and redirect URLs. */
  checkout(id: string): Promise<CheckoutView | undefined>;
  /** One page of payments newest first, with their details. */
  list(query: ListQuery): Promise<{ payments: PaymentDetail[]; nextCursor: string | undefined }>;
  /** The scan position of `network` (default: the first one); undefined before its first scan. */
  scanPosition(network?: string): Promise<ScanPosition | undefined>;
  /** The names of the networks, in config order. */
  networks: readonly string[];
  /**
   * Whether the wire carries the network fields (`network`, `networks`,
   * `wrong_network_amount`, …): a config with `networks`.
   */
  showNetworks: boolean;
  /**
   * Payments by status and the transitions since start, from memory (no
   * query): seeded once at start, moved by each commit (metrics).
   */
  tallies(): PaymentTallies;
  /** The first network's chain watcher consumer (the only one with a single chain). */
  sink: ChainSink;
  /** Each network's chain watcher consumer, by name. */
  sinks: ReadonlyMap<string, ChainSink>;
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

/**
 * The networks: several (`networks`, from a config with `networks`: the
 * wire carries the network fields), or the single chain's (`chainId`,
 * `token`, `requiredConfirmations`: one network named "ethereum", the wire
 * as it always was).
 */
export type PaymentNetworksParams = {
  networks?: readonly PaymentNetwork[] | undefined;
  chainId?: number | undefined;
  token?: string | undefined;
  requiredConfirmations?: number | undefined;
};

export async function createPayments(
  params: {
    /** The storage (store/storage.ts), on either backend. */
    storage: Storage;
    /** With `prefetch` (an address pool), told the next index after each create. */
    deriver: AddressDeriver & { prefetch?(nextIndex: number): void };
    clock: Clock;
    logger: Logger;
    decimals: number;
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
    /**
     * Creates wait until every network has a scan position (the daemon:
     * see `whenScanStarted`); off for tools and tests that create payments
     * before anything scans.
     */
    waitForScan?: boolean;
  } & PaymentNetworksParams,
): Promise<Payments> {
  const {
    storage,
    deriver,
    clock,
    logger,
    decimals,
    expiresAfterSeconds,
    monitorForSeconds = 7 * 86_400,
    keepBlocks = 256,
    defaultEvents = DEFAULT_EVENT_TYPES,
    generateId = generatePaymentId,
    onEvents = () => {},
    onGroupCommit = () => {},
    waitForScan = false,
  } = params;
  const showNetworks = params.networks !== undefined;
  let networks: readonly PaymentNetwork[];
  if (params.networks !== undefined) {
    networks = params.networks;
  } else {
    const { chainId, token, requiredConfirmations } = params;
    if (chainId === undefined || token === undefined || requiredConfirmations === undefined) {
      throw new Error("createPayments: give networks, or chainId, token and requiredConfirmations");
    }
    networks = [{ name: LEGACY_NETWORK, chainId, token, confirmations: requiredConfirmations }];
  }
  if (networks.length === 0) throw new Error("createPayments: no network");
  const byName = new Map(networks.map((network) => [network.name, network]));
  // NOTE: a transfer on a network no longer configured (rows of an earlier
  // config) needs as many confirmations as the strictest network.
  const strictest = Math.max(...networks.map((network) => network.confirmations));
  const requiredConfirmations = (network: string) =>
    byName.get(network)?.confirmations ?? strictest;
  return await createPaymentLogic({
    storage,
    deriver,
    clock,
    logger,
    decimals,
    expiresAfterSeconds,
    monitorForSeconds,
    keepBlocks,
    defaultEvents,
    generateId,
    onEvents,
    onGroupCommit,
    waitForScan,
    networks,
    showNetworks,
    requiredConfirmations,
  });
}

async function createPaymentLogic({
  storage,
  deriver,
  clock,
  logger,
  decimals,
  expiresAfterSeconds,
  monitorForSeconds,
  keepBlocks,
  defaultEvents,
  generateId,
  onEvents,
  onGroupCommit,
  waitForScan,
  networks,
  showNetworks,
  requiredConfirmations,
}: {
  storage: Storage;
  deriver: AddressDeriver & { prefetch?(nextIndex: number): void };
  clock: Clock;
  logger: Logger;
  decimals: number;
  expiresAfterSeconds: number;
  monitorForSeconds: number;
  keepBlocks: number;
  defaultEvents: readonly EventType[];
  generateId: IdGenerator;
  onEvents: () => void;
  onGroupCommit: () => void;
  waitForScan: boolean;
  networks: readonly PaymentNetwork[];
  showNetworks: boolean;
  requiredConfirmations: (network: string) => number;
}): Promise<Payments> {
  const { payments: store, events } = storage;
  const log = logger.child({ module: "payments" });
  const tallies = createTallies({ byStatus: await store.countByStatus() });
  const changes = createChangeFeed({
    storage,
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
    store,
    transitions,
    changes,
    clock,
    logger,
    onEvents,
  });
  const creator = createPaymentCreator({
    storage,
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
    batchesInFlight: storage.backend === "postgres" ? 2 : 1,
  });
  const names = networks.map((network) => network.name);
  const views = createPaymentViews({
    store,
    events,
    dataVersion: storage.dataVersion,
    dataVersionNow: storage.dataVersionNow,
    decimals,
    networks: { names, requiredConfirmations, show: showNetworks },
  });
  const sinks = new Map(
    networks.map((network) => [
      network.name,
      createPaymentSink({
        store,
        transitions,
        changes,
        clock,
        logger,
        network,
        monitorForSeconds,
        keepBlocks: network.keepBlocks ?? keepBlocks,
        onEvents,
      }),
    ]),
  );

  const cancel = changes.transaction(
    async (id: string): Promise<{ row: StoredPayment; queued: number }> => {
      const payment = await store.lockPayment(id);
      if (!payment) throw new PaymentNotFoundError(`no payment ${id}`);
      if (payment.status === "paid") throw new PaymentAlreadyPaidError(`payment ${id} is paid`);
      if (payment.cancelled_at !== null) return { row: payment, queued: 0 };
      const now = clock.now();
      await store.setCancelled({ id, now });
      const queued = await transitions.apply(id, await store.heads(), now);
      return { row: (await store.getPayment(id)) as StoredPayment, queued };
    },
  );

  // Other replicas' commits (PostgreSQL): the live streams hear of them, and
  // the tallies are counted again (one count at a time, the latest wins).
  let recounting: Promise<void> | undefined;
  let recountAgain = false;
  function recount() {
    if (recounting) {
      recountAgain = true;
      return;
    }
    recounting = store
      .countByStatus()
      .then((byStatus) => tallies.recount(byStatus))
      .catch((error: unknown) => log.warn({ err: error }, "counting payments by status failed"))
      .finally(() => {
        recounting = undefined;
        if (recountAgain) {
          recountAgain = false;
          recount();
        }
      });
  }
  storage.onExternalChange((change) => {
    changes.external(change);
    if (change.ids.length > 0) recount();
  });

  // NOTE: on a first start the scan begins at the head of its first poll
  // (without a startBlock): a payment created and paid before that poll
  // would be paid below the scan. So creates wait until every network has
  // a scan position (set by this daemon's watchers, or the leader's), then
  // never again.
  let scanStarted: Promise<void> | undefined;
  async function untilScanStarted(): Promise<void> {
    const deadline = clock.now() + SCAN_START_WAIT_MS;
    for (;;) {
      const cursors = await Promise.all(names.map((name) => store.getCursor(name)));
      if (cursors.every((cursor) => cursor !== undefined)) return;
      if (clock.now() >= deadline) {
        const waiting = names.filter((_, i) => cursors[i] === undefined);
        if (waiting.length === names.length) {
          throw new ScanNotStartedError(
            "the daemon has not read the chain yet (first start): try again in a moment",
          );
        }
        // Several networks, one of them down since the very first start:
        // the others take payments (as they do when one goes down later).
        log.warn(
          { networks: waiting },
          "payments are created while these networks have never been scanned: their first scan begins at their head then, so funds sent on them before are not seen (set their startBlock)",
        );
        return;
      }
      await clock.sleep(SCAN_START_POLL_MS);
    }
  }
  function whenScanStarted(): Promise<void> {
    if (!waitForScan) return Promise.resolve();
    scanStarted ??= untilScanStarted().catch((error: unknown) => {
      scanStarted = undefined; // the next create asks again
      throw error;
    });
    return scanStarted;
  }

  return {
    create: async (params) => {
      await whenScanStarted();
      return creator.create(params);
    },
    createDurably: async (params) => {
      await whenScanStarted();
      return creator.createDurably(params);
    },
    get: (id) => store.getPayment(id),
    getByOrderId: (orderId) => store.getPaymentByOrderId(orderId),
    async cancel(id) {
      const { row, queued } = await cancel(id);
      if (queued > 0) onEvents();
      return row;
    },
    view: (id) => views.view(id),
    statusJson: (id) => views.statusJson(id),
    cachedStatusJson: (id) => views.cachedStatusJson(id),
    statusJsonMany: (ids) => views.statusJsonMany(ids),
    details: (rows) => views.details(rows),
    checkout: (id) => views.checkout(id),
    async list(query) {
      const page = await listPayments(store, query);
      return { payments: await views.details(page.rows), nextCursor: page.nextCursor };
    },
    async scanPosition(network = names[0] as string) {
      const cursor = await store.getCursor(network);
      return cursor
        ? {
            blockNumber: cursor.block_number,
            head: cursor.head_number,
            updatedAt: cursor.updated_at,
          }
        : undefined;
    },
    networks: names,
    showNetworks,
    tallies: () => tallies.snapshot(),
    sink: sinks.get(names[0] as string) as ChainSink,
    sinks,
    deadlines,
    outbox: createOutbox({ storage, showNetworks }),
    onChange: (listener) => changes.subscribe(listener),
  };
}
