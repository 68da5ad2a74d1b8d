/**
 * The operations listener (`ops.host`/`ops.port`, off the public port):
 * `GET /livez`, `GET /readyz` and `GET /metrics` (Prometheus text).
 *
 * Every answer is cheap whatever the size of the database: each network's
 * chain figures come from its watcher's memory (labelled `network`), payments by status from the
 * payment logic's in-memory tallies, the postback queue from one query on
 * a partial index of the pending events, each scan position from one row,
 * and readiness probes the database's write lock without writing. Nothing
 * here calls the RPC node: its health is what the watcher's own calls saw.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, Gauge } from "prom-client";
import type { ChainWatcher } from "../chain/watcher.ts";
import type { Clock } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import { PAYMENT_STATUSES, type Payments } from "../payments/index.ts";
import type { PostbackSender } from "../postbacks/index.ts";
import type { WriteProbe } from "../store/storage.ts";
import type { OpsMetrics, RouteOf } from "./metrics.ts";
import {
  checkLiveness,
  checkNetworksReadiness,
  checkReadiness,
  type HealthAnswer,
  httpStatusOf,
  type ReadinessBounds,
} from "./readiness.ts";

export {
  createOpsMetrics,
  type OpsMetrics,
  type PortName,
  type RouteOf,
} from "./metrics.ts";
export { type ReadinessBounds, readinessBounds } from "./readiness.ts";

/** How often the event loop heartbeat ticks (livez's lag check). */
const HEARTBEAT_MS = 500;

export type OpsListener = {
  /** The node:http request listener the daemon serves on `ops.port`. */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
  /** The ops port's routes, for the `route` label. */
  routeOf: RouteOf;
  /** Stops the heartbeat timer (shutdown). */
  close(): void;
};

const ROUTES = new Set(["/livez", "/readyz", "/metrics"]);

/** `/livez`, `/readyz`, `/metrics`, or `other`. */
export const opsRouteOf: RouteOf = (_method, path) => (ROUTES.has(path) ? path : "other");

/** A watched network as the ops room reads it. */
export type OpsNetwork = {
  name: string;
  watcher: Pick<ChainWatcher, "stats">;
  /** Its /readyz bounds (from `ops.ready` and its own confirmations and poll interval). */
  bounds: ReadinessBounds;
};

/**
 * The ops listener over the daemon's parts. It registers the scrape-time
 * metrics (chain, payments, postbacks, SSE) on `metrics.registry`.
 */
export function createOpsListener({
  metrics,
  writable,
  scanning = () => true,
  payments,
  networks,
  checksPerNetwork,
  sender,
  sseConnections,
  clock,
  logger,
}: {
  metrics: OpsMetrics;
  /** Whether the database takes writes now (Storage.writable). */
  writable: () => Promise<WriteProbe>;
  /**
   * Whether this process runs the chain watchers now: always on SQLite; on
   * PostgreSQL, while this replica leads. A replica that does not reads
   * where the scan stands from the database (the leader's cursor).
   */
  scanning?: () => boolean;
  payments: Pick<Payments, "scanPosition" | "tallies" | "outbox">;
  /** Every watched network, in config order. */
  networks: readonly OpsNetwork[];
  /**
   * /readyz names each network's checks ("polygon.rpc") and adds their
   * verdicts (a config with `networks`); false: the single chain's checks
   * under their plain names, as before there were several.
   */
  checksPerNetwork: boolean;
  sender: Pick<PostbackSender, "stats">;
  /** Live status streams open now (the public port's SSE). */
  sseConnections: () => number;
  clock: Pick<Clock, "now">;
  logger: Logger;
}): OpsListener {
  const log = logger.child({ module: "ops" });
  const registry = metrics.registry;
  const startedAt = clock.now();

  // The event loop heartbeat: how late the last tick came.
  let lagMs = 0;
  let expected = performance.now() + HEARTBEAT_MS;
  const heartbeat = setInterval(() => {
    const now = performance.now();
    lagMs = Math.max(0, now - expected);
    expected = now + HEARTBEAT_MS;
  }, HEARTBEAT_MS);
  heartbeat.unref();

  /** A network's position: the head from its watcher's memory, the scan from its cursor's row. */
  async function chainPosition({ name, watcher }: OpsNetwork) {
    // NOTE: a database that does not answer fails the database check; the
    // scan position is then unknown (null fails its checks too), not a 500.
    const position = await payments.scanPosition(name).catch(() => undefined);
    if (!scanning()) {
      // The leader's scan, as its cursor row shows it: the head it last
      // recorded, and when it last moved the row.
      const at = position?.updatedAt ?? null;
      return {
        stats: { ...watcher.stats(), head: position?.head ?? null, headSince: at },
        head: position?.head ?? null,
        headSince: at,
        scanned: position?.blockNumber ?? null,
        recordedAt: at,
      };
    }
    const stats = watcher.stats();
    return {
      stats,
      // Before the node's first answer, the head stored with the cursor.
      head: stats.head ?? position?.head ?? null,
      headSince: stats.headSince,
      scanned: position?.blockNumber ?? null,
      recordedAt: undefined as number | null | undefined,
    };
  }

  /** A gauge with one sample per network. */
  const networkGauge = (name: string, help: string, read: (network: OpsNetwork) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ["network"],
      registers: [registry],
      collect() {
        for (const network of networks) {
          // NOTE: unknown (no head yet) is NaN, which Prometheus reads as "no value".
          this.set({ network: network.name }, read(network) ?? Number.NaN);
        }
      },
    });

  const gauge = (name: string, help: string, read: () => number | null) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const value = read();
        // NOTE: unknown (no head yet) is NaN, which Prometheus reads as "no value".
        this.set(value ?? Number.NaN);
      },
    });
  /** A counter whose total is kept elsewhere (the watcher, the sender): copied at scrape time. */
  const counterOf = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: () => Array<{ labels: Record<L, string>; value: number }>,
  ) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, value } of read()) {
          this.inc(labels as never, value);
        }
      },
    });

  // NOTE: one collect sets the three position gauges (one cursor read per
  // network per scrape); prom-client collects metrics in registration
  // order, so the later two are set by the time they are written.
  // NOTE: the three chain gauges of one scrape read one snapshot of the
  // positions: prom-client starts every metric's collect in the same turn, so
  // they all get the promise the first one made.
  type Position = Awaited<ReturnType<typeof chainPosition>>;
  let snapshot: Promise<Array<[string, Position]>> | undefined;
  function positionsOfScrape() {
    if (snapshot === undefined) {
      const current = Promise.all(
        networks.map(
          async (network): Promise<[string, Position]> => [
            network.name,
            await chainPosition(network),
          ],
        ),
      );
      snapshot = current;
      const clear = () => {
        if (snapshot === current) snapshot = undefined;
      };
      current.then(clear, clear);
    }
    return snapshot;
  }
  // NOTE: unknown (no head yet) is NaN, which Prometheus reads as "no value".
  const chainGauge = (name: string, help: string, value: (position: Position) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["network"],
      registers: [],
      async collect() {
        for (const [network, position] of await positionsOfScrape()) {
          this.set({ network }, value(position));
        }
      },
    });
  const head = chainGauge(
    "oxbtcpay_chain_head_block",
    "The newest block number a network's chain node reported.",
    (position) => position.head ?? Number.NaN,
  );
  const scanned = chainGauge(
    "oxbtcpay_chain_scanned_block",
    "The last block of a network whose transfers are fully recorded (its scan cursor).",
    (position) => position.scanned ?? Number.NaN,
  );
  const behind = chainGauge(
    "oxbtcpay_chain_blocks_behind",
    "A network's head block minus its scanned block: blocks not scanned yet.",
    (position) =>
      position.head === null || position.scanned === null
        ? Number.NaN
        : Math.max(0, position.head - position.scanned),
  );
  for (const metric of [head, scanned, behind]) registry.registerMetric(metric);
  networkGauge(
    "oxbtcpay_chain_head_age_seconds",
    "Seconds since a network's head block number last changed (since start if its node has not answered yet).",
    ({ watcher }) => (clock.now() - (watcher.stats().headSince ?? startedAt)) / 1000,
  );
  networkGauge(
    "oxbtcpay_chain_getlogs_range_blocks",
    "A network's current eth_getLogs block range (shrunk when the provider refuses a range).",
    ({ watcher }) => watcher.stats().range,
  );
  networkGauge(
    "oxbtcpay_chain_reorg_depth_max_blocks",
    "The deepest reorg seen on a network since start, in blocks.",
    ({ watcher }) => watcher.stats().deepestReorg,
  );
  counterOf(
    "oxbtcpay_chain_reorgs_total",
    "Reorgs seen (and rewound) on a network since start.",
    ["network"],
    () =>
      networks.map(({ name, watcher }) => ({
        labels: { network: name },
        value: watcher.stats().reorgs,
      })),
  );
  counterOf(
    "oxbtcpay_chain_rate_limited_total",
    "Polls a network's provider refused with a rate limit (HTTP 429, -32005) since start.",
    ["network"],
    () =>
      networks.map(({ name, watcher }) => ({
        labels: { network: name },
        value: watcher.stats().rateLimited,
      })),
  );

  new Gauge({
    name: "oxbtcpay_payments",
    help: "Payments by stored status (kept in memory, seeded from the database at start).",
    labelNames: ["status"],
    registers: [registry],
    collect() {
      const { byStatus } = payments.tallies();
      for (const status of PAYMENT_STATUSES) this.set({ status }, byStatus[status]);
    },
  });
  counterOf("oxbtcpay_payments_created_total", "Payments created since start.", [], () => [
    { labels: {}, value: payments.tallies().created },
  ]);
  counterOf(
    "oxbtcpay_payment_transitions_total",
    "Payment status changes since start, by from and to status.",
    ["from", "to"],
    () =>
      payments
        .tallies()
        .transitions.map(({ from, to, count }) => ({ labels: { from, to }, value: count })),
  );

  counterOf(
    "oxbtcpay_postback_deliveries_total",
    "Postback attempts since start by outcome: delivered, retry (failed, retried later), failed (given up), crashed.",
    ["outcome"],
    () =>
      Object.entries(sender.stats()).map(([outcome, value]) => ({ labels: { outcome }, value })),
  );
  // NOTE: one query for both queue gauges, set by the first one's collect.
  const oldestPending = new Gauge({
    name: "oxbtcpay_postback_oldest_pending_age_seconds",
    help: "Seconds the oldest pending postback event has waited since it was raised (or re-queued); 0 when none is pending.",
    registers: [],
  });
  new Gauge({
    name: "oxbtcpay_postback_queue_depth",
    help: "Postback events pending delivery (first attempt or retry).",
    registers: [registry],
    async collect() {
      const { count, oldestAt } = await payments.outbox.pendingSummary();
      this.set(count);
      oldestPending.set(oldestAt === null ? 0 : Math.max(0, clock.now() - oldestAt) / 1000);
    },
  });
  registry.registerMetric(oldestPending);
  gauge(
    "oxbtcpay_is_leader",
    "1 while this process runs the chain watchers and the deadline sweep: always on SQLite; on PostgreSQL, the one replica holding leadership.",
    () => (scanning() ? 1 : 0),
  );
  gauge(
    "oxbtcpay_sse_connections",
    "Live status streams (SSE) open on the public port.",
    sseConnections,
  );

  /** What /readyz reads of one network. */
  async function inputsOf(network: OpsNetwork) {
    const { head, headSince, scanned, recordedAt } = await chainPosition(network);
    // NOTE: a replica that does not scan asks no node: the leader's last
    // record of the node's answer stands for it.
    const rpc =
      recordedAt === undefined
        ? metrics.rpcHealth(network.name)
        : { lastOkAt: recordedAt, lastOkLatencyMs: recordedAt === null ? null : 0 };
    return {
      rpcLastOkAt: rpc.lastOkAt,
      rpcLastOkLatencyMs: rpc.lastOkLatencyMs,
      head,
      headSince,
      scanned,
    };
  }

  async function readiness(): Promise<HealthAnswer> {
    const first = networks[0];
    if (!first) throw new Error("the ops listener watches no network");
    const now = clock.now();
    const database = await writable();
    if (!checksPerNetwork) {
      return checkReadiness({ now, database, ...(await inputsOf(first)) }, first.bounds);
    }
    return checkNetworksReadiness({
      now,
      database,
      networks: await Promise.all(
        networks.map(async (network) => ({
          name: network.name,
          inputs: await inputsOf(network),
          bounds: network.bounds,
        })),
      ),
    });
  }

  function sendJson(req: IncomingMessage, res: ServerResponse, answer: HealthAnswer) {
    const body = JSON.stringify(answer);
    res.writeHead(httpStatusOf(answer), {
      "content-type": "application/json",
      "cache-control": "no-store",
      "content-length": Buffer.byteLength(body),
    });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  function send(res: ServerResponse, status: number, body: string) {
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  }

  return {
    routeOf: opsRouteOf,
    close: () => clearInterval(heartbeat),
    listener(req, res) {
      const url = req.url ?? "/";
      const query = url.indexOf("?");
      const path = query === -1 ? url : url.slice(0, query);
      if (!ROUTES.has(path)) return send(res, 404, JSON.stringify({ error: "not found" }));
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        return send(res, 405, JSON.stringify({ error: "method not allowed" }));
      }
      try {
        if (path === "/livez") {
          return sendJson(
            req,
            res,
            checkLiveness({ uptimeMs: clock.now() - startedAt, eventLoopLagMs: lagMs }),
          );
        }
        if (path === "/readyz") {
          readiness().then(
            (answer) => sendJson(req, res, answer),
            (error) => {
              log.error({ err: error }, "ops port: health check failed");
              send(res, 500, JSON.stringify({ error: "internal error" }));
            },
          );
          return;
        }
      } catch (error) {
        log.error({ err: error }, "ops port: health check failed");
        return send(res, 500, JSON.stringify({ error: "internal error" }));
      }
      registry.metrics().then(
        (text) => {
          res.writeHead(200, {
            "content-type": registry.contentType,
            "cache-control": "no-store",
            "content-length": Buffer.byteLength(text),
          });
          res.end(req.method === "HEAD" ? undefined : text);
        },
        (error) => {
          log.error({ err: error }, "ops port: metrics failed");
          send(res, 500, JSON.stringify({ error: "internal error" }));
        },
      );
    },
  };
}
