/**
 * Builds the running daemon from a validated config: database, deriver,
 * payment logic, one chain watcher per network, postback sender and both
 * HTTP ports. The CLI's `serve` and `dev` commands and the tests start it
 * through here.
 */

import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createFastAddressDeriver } from "./addresses/index.ts";
import { createAddressPool } from "./addresses/pool.ts";
import { createChainClient } from "./chain/client.ts";
import { createHeadSubscription } from "./chain/heads.ts";
import type { ChainSink } from "./chain/types.ts";
import { type ChainWatcher, createChainWatcher } from "./chain/watcher.ts";
import { type Config, type NetworkConfig, networksOf } from "./config/index.ts";
import { createAllowlist } from "./internal/allowlist.ts";
import { type Clock, createClock } from "./internal/clock.ts";
import { type Drainable, drainable } from "./internal/drain.ts";
import { errorMessage } from "./internal/errors.ts";
import { createLeadership, type Leadership } from "./internal/leadership.ts";
import type { Logger } from "./internal/logger.ts";
import { createShutdown, type Shutdown } from "./internal/shutdown.ts";
import {
  createOpsListener,
  createOpsMetrics,
  type OpsMetrics,
  readinessBounds,
} from "./ops/index.ts";
import { createPayments, type Payments } from "./payments/index.ts";
import { createPostbackSender, type PostbackSender } from "./postbacks/index.ts";
import { createTargetGuard, type Resolver, type TargetGuard } from "./postbacks/targets.ts";
import { createCheckout } from "./public/checkout/index.ts";
import { type ConnectionLimits, createConnectionLimits } from "./public/connections.ts";
import { createPublicListener, publicRouteOf } from "./public/index.ts";
import { createLiveStreams, type LiveStreams } from "./public/live.ts";
import { createPrivateListener, privateRouteOf } from "./rpc/index.ts";
import { startCheckpointer } from "./store/sqlite/checkpoint.ts";
import { type Db, openDatabase } from "./store/sqlite/index.ts";
import { lockDatabase } from "./store/sqlite/lock.ts";
import { createSqliteStorage } from "./store/sqlite/storage.ts";
import type { Storage } from "./store/storage.ts";

export type Daemon = {
  privateUrl: string;
  publicUrl: string;
  /** The ops listener (/livez, /readyz, /metrics); undefined with `ops.enabled: false`. */
  opsUrl: string | undefined;
  payments: Payments;
  sender: PostbackSender;
  /** The first network's chain watcher (the only one with the single `chain` section). */
  watcher: ChainWatcher;
  /** Each network's chain watcher, by name, in config order. */
  watchers: ReadonlyMap<string, ChainWatcher>;
  /** The public port's open connections and refusals (tests, the bench). */
  publicConnections: Pick<ConnectionLimits, "open" | "openFrom" | "refused">;
  /** The SQLite connection; undefined on PostgreSQL (`database.url`). */
  db: Db | undefined;
  /** Whether this daemon runs the scan now: always on SQLite; on PostgreSQL while it leads. */
  isLeader(): boolean;
  /**
   * Settles once the daemon has stopped and closed the database; rejects if
   * it stopped on a fatal error (wrong chain).
   */
  done: Promise<void>;
  /**
   * Stops gracefully: no new connections, requests in flight answered (cut
   * after {@link DRAIN_TIMEOUT_MS}), the current scan batch finished, then
   * everything closed, the database last.
   */
  stop(): Promise<void>;
};

/** How long requests in flight get to finish once a stop begins; then their connections are cut. */
export const DRAIN_TIMEOUT_MS = 5_000;

/** What the checkout page shows of a network. */
function checkoutNetworkOf(network: NetworkConfig) {
  return {
    chainId: network.chainId,
    token: network.token,
    networkName: network.displayName,
    symbol: network.symbol,
    explorerUrl: network.explorerUrl,
  };
}

/** Whether `host` (a listen address) is reachable only from this machine. */
function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

async function listen(server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${shownHost}:${address.port}`;
}

/** Stops `server` gracefully (see {@link drainable}); logs the requests it had to cut. */
async function close(server: Drainable, name: string, logger: Logger): Promise<void> {
  const { cut } = await server.close(DRAIN_TIMEOUT_MS);
  if (cut > 0) {
    logger.warn(
      { port: name, requests: cut, timeout_ms: DRAIN_TIMEOUT_MS },
      "requests still in flight after the drain timeout: connections cut",
    );
  }
}

type Opened = {
  storage: Storage;
  /** The SQLite connection; undefined on PostgreSQL. */
  db: Db | undefined;
  /** The PostgreSQL URL (leadership's own connection); undefined on SQLite. */
  postgresUrl: string | undefined;
};

/**
 * Opens the configured database (migrated) as the Storage: a SQLite file,
 * locked for this daemon alone, or a PostgreSQL database that replicas
 * share. What it opens is closed by `shutdown`.
 */
async function openStorage({
  config,
  clock,
  logger,
  shutdown,
  sqlTrace,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  shutdown: Shutdown;
  sqlTrace: ((sql: string) => void) | undefined;
}): Promise<Opened> {
  const url = config.database.url;
  if (url !== undefined) {
    // NOTE: imported here, so a SQLite daemon never loads pg.
    const { openPostgres } = await import("./store/postgres/index.ts");
    const { createPostgresStorage } = await import("./store/postgres/storage.ts");
    const pg = await openPostgres({ url });
    const storage = createPostgresStorage({ db: pg, url, clock, logger });
    shutdown.add(() => storage.close());
    logger.child({ module: "daemon" }).info({ database: pg.name }, "database: PostgreSQL");
    return { storage, db: undefined, postgresUrl: url };
  }
  const path = config.database.path as string;
  // One daemon per database: refused here, before anything is opened or bound.
  if (path !== ":memory:") {
    const lock = lockDatabase({ path, command: "serve" });
    shutdown.add(() => lock.release());
  }
  const db = openDatabase({ path, verbose: sqlTrace });
  shutdown.add(() => db.close());
  return { storage: createSqliteStorage(db), db, postgresUrl: undefined };
}

/**
 * Storage: opens the database (see {@link openStorage}) and, on a SQLite
 * file, the WAL checkpointer; stops both, the database last. A failed open
 * releases what it had opened and throws.
 */
async function startStorage({
  config,
  clock,
  logger,
  shutdown,
  sqlTrace,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  shutdown: Shutdown;
  sqlTrace: ((sql: string) => void) | undefined;
}) {
  let opened: Opened;
  try {
    opened = await openStorage({ config, clock, logger, shutdown, sqlTrace });
  } catch (error) {
    await shutdown.kill();
    throw error;
  }
  const { storage, db, postgresUrl } = opened;
  // During bursts of checkouts, WAL checkpoints run in a worker thread, so
  // the main thread never stalls on one.
  const path = config.database.path;
  const checkpointer =
    db === undefined || path === undefined || path === ":memory:"
      ? undefined
      : startCheckpointer({ db, path, logger });
  if (checkpointer) shutdown.add(() => checkpointer.close());
  return { storage, db, postgresUrl, checkpointer };
}

/**
 * Payments: starts the address pool's worker and the payment logic over
 * `storage` for every configured network; stops the pool.
 */
async function startPayments({
  config,
  clock,
  logger,
  shutdown,
  storage,
  onEvents,
  onGroupCommit,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  shutdown: Shutdown;
  storage: Storage;
  /** New events are in the outbox (wakes the postback sender). */
  onEvents: () => void;
  /** A group commit landed (nudges the checkpointer). */
  onGroupCommit: () => void;
}) {
  // Addresses are derived ahead in a worker thread; an index it has not
  // reached yet is derived on the spot (same addresses, tested).
  const addresses = createAddressPool({
    xpub: config.wallet.xpub,
    fallback: createFastAddressDeriver({ xpub: config.wallet.xpub }),
    logger,
  });
  shutdown.add(() => addresses.close());
  const networks = networksOf(config);
  const first = networks[0];
  if (!first) throw new Error("the config has no network");
  // Every network's token has 0xBTC's decimals (the config checks it).
  const decimals = first.decimals;
  const keepBlocksOf = (network: { finalityDepth: number }) =>
    Math.max(256, network.finalityDepth * 2);
  const payments = await createPayments({
    storage,
    deriver: addresses,
    clock,
    logger,
    // With `networks`, the wire carries the network fields; with the single
    // `chain` section it stays as it always was.
    ...(config.networks === undefined
      ? {
          chainId: first.chainId,
          token: first.token,
          requiredConfirmations: first.confirmations,
        }
      : {
          networks: networks.map((network) => ({
            name: network.name,
            chainId: network.chainId,
            token: network.token,
            confirmations: network.confirmations,
            keepBlocks: keepBlocksOf(network),
          })),
        }),
    decimals,
    expiresAfterSeconds: config.payments.expiresAfter,
    monitorForSeconds: config.payments.monitorFor,
    keepBlocks: keepBlocksOf(first),
    defaultEvents: config.postbacks.events,
    onEvents,
    onGroupCommit,
    waitForScan: true,
  });
  return { payments, networks, first, decimals };
}

/**
 * Postbacks: starts the SSRF guard and builds the sender over the outbox
 * (its loop runs from {@link startLoops}); stops the guard.
 */
function startPostbacks({
  config,
  clock,
  logger,
  shutdown,
  payments,
  decimals,
  resolve,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  shutdown: Shutdown;
  payments: Payments;
  decimals: number;
  resolve: Resolver | undefined;
}): { guard: TargetGuard; sender: PostbackSender } {
  const guard = createTargetGuard({
    allowTargets: config.postbacks.allowTargets,
    connectTimeoutMs: config.postbacks.timeoutMs,
    ...(resolve ? { resolve } : {}),
  });
  shutdown.add(() => guard.close());
  const sender = createPostbackSender({
    outbox: payments.outbox,
    clock,
    logger,
    decimals,
    timeoutMs: config.postbacks.timeoutMs,
    secrets:
      config.postbacks.secret === undefined
        ? []
        : [config.postbacks.secret, ...config.postbacks.previousSecrets],
    retrySchedule: config.postbacks.retrySchedule,
    concurrency: config.postbacks.concurrency,
    dispatcher: guard.dispatcher,
  });
  return { guard, sender };
}

/**
 * Watchers: builds one chain watcher per network, each with its own RPC
 * client, feeding that network's payment sink (they run from
 * {@link startLoops}); stops nothing.
 */
function createWatchers({
  config,
  clock,
  logger,
  metrics,
  networks,
  first,
  payments,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  metrics: OpsMetrics;
  networks: NetworkConfig[];
  first: NetworkConfig;
  payments: Payments;
}) {
  // One watcher per network, each with its own client, cursor, block window,
  // ranges and backoff: a network that is down or lagging stalls no other.
  const watchers = new Map(
    networks.map((network) => [
      network.name,
      createChainWatcher({
        client: createChainClient({
          rpcUrl: network.rpcUrl,
          onCall: metrics.rpcObserver(network.name),
        }),
        sink: payments.sinks.get(network.name) as ChainSink,
        clock,
        logger,
        chainId: network.chainId,
        token: network.token,
        decimals: network.decimals,
        configKey: network.key,
        network: config.networks === undefined ? undefined : network.name,
        pollIntervalMs: network.pollIntervalMs,
        maxBlockRange: network.maxBlockRange,
        finalityDepth: network.finalityDepth,
        startBlock: network.startBlock,
      }),
    ]),
  );
  const watcher = watchers.get(first.name) as ChainWatcher;
  return { watchers, watcher };
}

/** The private and public ports, built but not listening yet. */
type Ports = {
  privateServer: Server;
  privateDrain: Drainable;
  publicServer: Server;
  publicDrain: Drainable;
  live: LiveStreams;
  publicConnections: ConnectionLimits;
  /** Sets the public port as shoppers reach it (the private port's `checkout_url`s). */
  setCheckoutBase(base: string): void;
};

/**
 * Ports: builds the private port (JSON-RPC) and the public port (status,
 * checkout, live streams) with its connection caps, both drainable and
 * counted by `metrics`; stops the connection caps (the drain is
 * {@link drainOnStop}'s).
 */
function createPorts({
  config,
  clock,
  logger,
  shutdown,
  metrics,
  payments,
  networks,
  first,
  decimals,
  postbacks: { guard, sender },
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  shutdown: Shutdown;
  metrics: OpsMetrics;
  payments: Payments;
  networks: NetworkConfig[];
  first: NetworkConfig;
  decimals: number;
  postbacks: { guard: TargetGuard; sender: PostbackSender };
}): Ports {
  /** The public port as shoppers reach it: `public.url`, else the listener's own address. */
  let checkoutBase = "";
  const privateServer = createServer(
    createPrivateListener({
      payments,
      allowlist: createAllowlist({ allow: config.private.allow }),
      trustProxy:
        config.private.trustProxy.length > 0
          ? createAllowlist({ allow: config.private.trustProxy, loopback: false })
          : undefined,
      decimals,
      maxWholeTokens: BigInt(config.payments.maxAmount),
      logger,
      postbacks: {
        checkUrl: (url) => guard.checkUrl(url),
        resend: (id) => sender.resend(id),
      },
      apiKeys: config.private.apiKeys,
      checkoutUrlOf: (id) => `${checkoutBase}/${id}`,
    }),
  );
  const privateDrain = drainable(privateServer);
  const live = createLiveStreams({ payments, logger });
  const publicTrustProxy =
    config.public.trustProxy.length > 0
      ? createAllowlist({ allow: config.public.trustProxy, loopback: false })
      : undefined;
  const publicServer = createServer(
    createPublicListener({
      payments,
      logger,
      rateLimit: config.public.rateLimit,
      trustProxy: publicTrustProxy,
      clock,
      checkout: createCheckout({
        payments,
        settings: {
          shopName: config.checkout.shopName,
          support: config.checkout.support,
          redirectAfterPaidSeconds: config.checkout.redirectAfterPaidSeconds,
          frameAncestors: config.checkout.frameAncestors,
          ...checkoutNetworkOf(first),
        },
        networks: new Map(networks.map((network) => [network.name, checkoutNetworkOf(network)])),
        decimals,
        language: config.checkout.language,
        themeColor: config.checkout.themeColor,
        now: () => clock.now(),
      }),
      live,
    }),
  );
  // Thousands of shoppers hold connections here: capped below the descriptor limit.
  const publicConnections = createConnectionLimits({
    server: publicServer,
    settings: config.public,
    trustProxy: publicTrustProxy,
    logger,
  });
  shutdown.add(() => publicConnections.close());

  metrics.watchServer(privateServer, "private", privateRouteOf);
  metrics.watchServer(publicServer, "public", publicRouteOf);
  const publicDrain = drainable(publicServer);
  return {
    privateServer,
    privateDrain,
    publicServer,
    publicDrain,
    live,
    publicConnections,
    setCheckoutBase: (base) => {
      checkoutBase = base;
    },
  };
}

/** The ops port, built but not listening yet. */
type OpsPort = { server: Server; drain: Drainable };

/**
 * Ops: builds the ops port (/livez, /readyz, /metrics over every part),
 * undefined with `ops.enabled: false`; stops its heartbeat.
 */
function createOps({
  config,
  clock,
  logger,
  shutdown,
  metrics,
  storage,
  payments,
  networks,
  watchers,
  sender,
  live,
  scanning,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  shutdown: Shutdown;
  metrics: OpsMetrics;
  storage: Storage;
  payments: Payments;
  networks: NetworkConfig[];
  watchers: ReadonlyMap<string, ChainWatcher>;
  sender: PostbackSender;
  live: LiveStreams;
  /** Whether this daemon runs the scan now (leadership). */
  scanning: () => boolean;
}): OpsPort | undefined {
  if (!config.ops.enabled) return undefined;
  const ops = createOpsListener({
    metrics,
    writable: () => storage.writable(),
    scanning,
    payments,
    networks: networks.map((network) => ({
      name: network.name,
      watcher: watchers.get(network.name) as ChainWatcher,
      bounds: readinessBounds({
        ready: config.ops.ready,
        confirmations: network.confirmations,
        pollIntervalMs: network.pollIntervalMs,
      }),
    })),
    checksPerNetwork: config.networks !== undefined,
    sender,
    sseConnections: () => live.count(),
    clock,
    logger,
  });
  shutdown.add(() => ops.close());
  const server = createServer(ops.listener);
  metrics.watchServer(server, "ops", ops.routeOf);
  return { server, drain: drainable(server) };
}

/**
 * Listening: binds the public, private and ops ports, in that order, and
 * sets the checkout base once the public port has its address; on a failed
 * bind, closes the ports, stops everything started so far and throws.
 */
async function listenPorts({
  config,
  log,
  shutdown,
  ports,
  ops,
}: {
  config: Config;
  log: Logger;
  shutdown: Shutdown;
  ports: Ports;
  ops: OpsPort | undefined;
}): Promise<{ privateUrl: string; publicUrl: string; opsUrl: string | undefined }> {
  let privateUrl: string;
  let publicUrl: string;
  let opsUrl: string | undefined;
  try {
    publicUrl = await listen(ports.publicServer, config.public.host, config.public.port);
    const checkoutBase =
      config.public.url ??
      publicUrl.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:");
    ports.setCheckoutBase(checkoutBase);
    if (config.public.url === undefined && !isLoopbackHost(config.public.host)) {
      log.warn(
        { public_url: checkoutBase },
        "public.url is not set: checkout_url uses the listener's address; set public.url to the address shoppers reach",
      );
    }
    privateUrl = await listen(ports.privateServer, config.private.host, config.private.port);
    if (ops) opsUrl = await listen(ops.server, config.ops.host, config.ops.port);
  } catch (error) {
    ports.live.close();
    await Promise.all([
      ports.publicDrain.close(0),
      ports.privateDrain.close(0),
      ops?.drain.close(0),
    ]);
    await shutdown.kill();
    throw error;
  }
  return { privateUrl, publicUrl, opsUrl };
}

/**
 * Loops: starts the head subscriptions, the scan (every chain watcher and
 * the deadline sweep; on PostgreSQL, leadership runs it in terms while this
 * replica leads) and the postback sender's loop; each ends when `shutdown`
 * aborts, and a fatal error in any stops the daemon.
 */
function startLoops({
  config,
  clock,
  logger,
  log,
  shutdown,
  networks,
  watchers,
  payments,
  sender,
  postgresUrl,
}: {
  config: Config;
  clock: Clock;
  logger: Logger;
  log: Logger;
  shutdown: Shutdown;
  networks: NetworkConfig[];
  watchers: ReadonlyMap<string, ChainWatcher>;
  payments: Payments;
  sender: PostbackSender;
  postgresUrl: string | undefined;
}) {
  const heads = networks.flatMap((network) =>
    network.wsUrl
      ? [
          createHeadSubscription({
            url: network.wsUrl,
            onHead: () => watchers.get(network.name)?.wake(),
            clock,
            logger:
              config.networks === undefined ? logger : logger.child({ network: network.name }),
          }),
        ]
      : [],
  );
  const fatal = (loop: Promise<void>) =>
    loop.catch(async (error) => {
      log.fatal({ err: errorMessage(error) }, "stopping on a fatal error");
      void shutdown.kill();
      throw error;
    });
  /** What the scanner runs (the chain watchers and the deadline sweep) until `signal` aborts. */
  const scan = (signal: AbortSignal) =>
    [...[...watchers.values()].map((each) => each.run(signal)), payments.deadlines.run(signal)].map(
      fatal,
    );
  /** The scanner's terms on PostgreSQL: each runs until leadership is lost (or the stop). */
  const terms: Promise<unknown>[] = [];
  /** Leadership among replicas (PostgreSQL only): who runs the scan. */
  const leadership =
    postgresUrl === undefined
      ? undefined
      : createLeadership({
          url: postgresUrl,
          clock,
          logger,
          onElected: (term) => {
            terms.push(Promise.allSettled(scan(AbortSignal.any([term, shutdown.signal]))));
          },
        });
  const loops = [
    ...(leadership ? [leadership.run(shutdown.signal)] : scan(shutdown.signal)),
    sender.run(shutdown.signal),
    ...heads.map((subscription) => subscription.run(shutdown.signal)),
  ].map(fatal);
  return { loops, terms, leadership };
}

/**
 * The stop's first step (terminators run newest first): the ports stop
 * accepting and answer what they have in flight while the loops, already
 * told by the abort, finish their current step (a scan batch commits with
 * its cursor, or is not started). Only then are the workers and the
 * database closed.
 */
function drainOnStop({
  log,
  shutdown,
  ports,
  ops,
  loops,
  terms,
}: {
  log: Logger;
  shutdown: Shutdown;
  ports: Ports;
  ops: OpsPort | undefined;
  loops: Promise<void>[];
  terms: Promise<unknown>[];
}): void {
  shutdown.add(async () => {
    log.info(
      { in_flight: ports.privateDrain.inFlight() + ports.publicDrain.inFlight() },
      "stopping: no new connections; finishing requests in flight and the current scan batch",
    );
    ports.live.close();
    await Promise.all([
      close(ports.privateDrain, "private", log),
      close(ports.publicDrain, "public", log),
      ...(ops ? [close(ops.drain, "ops", log)] : []),
      Promise.allSettled(loops),
    ]);
    // A term's watchers finish their batch once leadership is released.
    await Promise.allSettled(terms);
  });
}

/**
 * Stops the daemon once every loop has ended; the promise settles when it
 * has stopped and rejects with the first loop's fatal error.
 */
function doneWhenLoopsEnd({
  shutdown,
  loops,
}: {
  shutdown: Shutdown;
  loops: Promise<void>[];
}): Promise<void> {
  const done = Promise.allSettled(loops).then(async (results) => {
    await shutdown.kill();
    const failed = results.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
  });
  done.catch(() => {});
  return done;
}

/**
 * Starts the daemon in named steps, in the order below. A stop (`stop()`,
 * or a loop's fatal error) undoes them in reverse, each step's terminators
 * newest first: drainOnStop's drain of the ports and loops, then the ops
 * heartbeat, the public connection caps, the postback guard, the address
 * pool, the checkpointer, and the database last (its lock after it).
 */
export async function startDaemon({
  config,
  logger,
  clock = createClock(),
  resolve,
  sqlTrace,
}: {
  config: Config;
  logger: Logger;
  clock?: Clock;
  /** DNS for the postback SSRF guard; tests inject one, production uses the system's. */
  resolve?: Resolver;
  /**
   * Told every statement the SQLite connection runs (the tests count what
   * start-up reads); nothing on PostgreSQL.
   */
  sqlTrace?: (sql: string) => void;
}): Promise<Daemon> {
  const shutdown = createShutdown();
  const log = logger.child({ module: "daemon" });
  const base = { config, clock, logger };
  const { storage, db, postgresUrl, checkpointer } = await startStorage({
    ...base,
    shutdown,
    sqlTrace,
  });
  const metrics = createOpsMetrics({ clock });
  /** Set by startLoops on PostgreSQL; without it this daemon always scans. */
  let leadership: Leadership | undefined;
  const isLeader = () => leadership?.isLeader() ?? true;
  /** Wakes the postback sender on new events; a no-op until it is built. */
  let wakeSender: (() => void) | undefined;
  const { payments, networks, first, decimals } = await startPayments({
    ...base,
    shutdown,
    storage,
    onEvents: () => wakeSender?.(),
    onGroupCommit: () => void checkpointer?.touch(),
  });
  const postbacks = startPostbacks({ ...base, shutdown, payments, decimals, resolve });
  const { sender } = postbacks;
  wakeSender = () => sender.wake();
  const { watchers, watcher } = createWatchers({ ...base, metrics, networks, first, payments });
  const ports = createPorts({
    ...base,
    shutdown,
    metrics,
    payments,
    networks,
    first,
    decimals,
    postbacks,
  });
  const ops = createOps({
    ...base,
    shutdown,
    metrics,
    storage,
    payments,
    networks,
    watchers,
    sender,
    live: ports.live,
    scanning: isLeader,
  });
  const urls = await listenPorts({ config, log, shutdown, ports, ops });
  const started = startLoops({
    ...base,
    log,
    shutdown,
    networks,
    watchers,
    payments,
    sender,
    postgresUrl,
  });
  leadership = started.leadership;
  drainOnStop({ log, shutdown, ports, ops, loops: started.loops, terms: started.terms });
  const done = doneWhenLoopsEnd({ shutdown, loops: started.loops });

  log.info(
    { private_url: urls.privateUrl, public_url: urls.publicUrl, ops_url: urls.opsUrl ?? null },
    "daemon started",
  );
  return {
    ...urls,
    payments,
    sender,
    watcher,
    watchers,
    publicConnections: ports.publicConnections,
    db,
    isLeader,
    done,
    stop: () => shutdown.kill(),
  };
}
