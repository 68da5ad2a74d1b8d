/**
 * The daemon's Prometheus metrics (prom-client) in a registry of its own,
 * and what the ops room records as things happen: each RPC call's duration
 * and outcome (from the chain client), each HTTP request on the daemon's
 * listeners. Everything else is read at scrape time (see ./index.ts).
 *
 * Labels carry only bounded values: a method name, a route template, a
 * status, an outcome, a network's name (from the config). Never a payment
 * id, an address or a URL.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RpcCallRecord } from "../chain/client.ts";
import { classifyProviderError } from "../chain/errors.ts";
import type { Clock } from "../internal/clock.ts";

/** The daemon's listeners, as the `port` label names them. */
export type PortName = "private" | "public" | "ops";

/** A request's route as a template (`/:id/status.json`), never the path itself. */
export type RouteOf = (method: string, path: string) => string;

/** What the RPC node's last answers say, for readiness. */
export type RpcHealth = {
  /** When (clock ms) a call last answered; null: none has yet. */
  lastOkAt: number | null;
  /** How long that call took, in ms. */
  lastOkLatencyMs: number | null;
  /** Calls that failed since the last one that answered. */
  failuresInRow: number;
};

export type OpsMetrics = {
  registry: Registry;
  /** The `onCall` of network `network`'s chain client (its calls carry that `network` label). */
  rpcObserver(network: string): (call: RpcCallRecord) => void;
  /** What network `network`'s node last answered (nothing yet if it has no observer). */
  rpcHealth(network: string): RpcHealth;
  /** Counts every request `server` answers, by route template and status, under `port`. */
  watchServer(server: Server, port: PortName, routeOf: RouteOf): void;
};

/**
 * The version in 0xbtcpay's package.json, "unknown" if it cannot be read.
 * NOTE: the sources sit two folders below the package root (src/ops), the
 * build three (dist/src/ops): look upward for the package itself.
 */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 4; depth++) {
    dir = dirname(dir);
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === "0xbtcpay") return typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      // not here: one folder up
    }
  }
  return "unknown";
}

const VERSION = packageVersion();

/** RPC durations: a fast local node answers in ms, a provider under load in seconds (timeout 15 s). */
const RPC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15];

/** The `kind` label of a failed RPC call. */
function errorKind(error: unknown, now: number): "range" | "rate_limit" | "other" {
  const kind = classifyProviderError(error, { now }).kind;
  return kind === "rate" ? "rate_limit" : kind;
}

/**
 * Creates the registry with prom-client's default process metrics, the
 * build info and the metrics recorded as things happen. One per daemon:
 * tests run several daemons in one process.
 */
export function createOpsMetrics({ clock }: { clock: Pick<Clock, "now"> }): OpsMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: "oxbtcpay_build_info",
    help: "Always 1; the labels name the daemon's version and the Node.js version running it.",
    labelNames: ["version", "node_version"],
    registers: [registry],
  }).set({ version: VERSION, node_version: process.version }, 1);

  const rpcDuration = new Histogram({
    name: "oxbtcpay_rpc_request_duration_seconds",
    help: "Duration of JSON-RPC calls to a network's chain node, answered or failed, by method.",
    labelNames: ["method", "network"],
    buckets: RPC_BUCKETS,
    registers: [registry],
  });
  const rpcErrors = new Counter({
    name: "oxbtcpay_rpc_errors_total",
    help: "Failed JSON-RPC calls to a network's chain node by method and kind (rate_limit, range: the eth_getLogs range was too large, other).",
    labelNames: ["method", "kind", "network"],
    registers: [registry],
  });
  const startedAt = clock.now();
  /** Each network's node health, in the order their observers were made. */
  const healthOf = new Map<string, RpcHealth>();
  const none = (): RpcHealth => ({ lastOkAt: null, lastOkLatencyMs: null, failuresInRow: 0 });
  new Gauge({
    name: "oxbtcpay_rpc_last_success_age_seconds",
    help: "Seconds since a network's chain node last answered a call (since start if it has not yet).",
    labelNames: ["network"],
    registers: [registry],
    collect() {
      for (const [network, health] of healthOf) {
        this.set({ network }, Math.max(0, clock.now() - (health.lastOkAt ?? startedAt)) / 1000);
      }
    },
  });

  const httpRequests = new Counter({
    name: "oxbtcpay_http_requests_total",
    help: "HTTP requests answered, by listener (private, public, ops), route template and status (aborted: the client left before an answer).",
    labelNames: ["port", "route", "status"],
    registers: [registry],
  });

  return {
    registry,
    rpcObserver(network) {
      const health = healthOf.get(network) ?? none();
      healthOf.set(network, health);
      return ({ method, durationMs, error }) => {
        rpcDuration.observe({ method, network }, durationMs / 1000);
        if (error === undefined) {
          health.lastOkAt = clock.now();
          health.lastOkLatencyMs = durationMs;
          health.failuresInRow = 0;
        } else {
          health.failuresInRow++;
          rpcErrors.inc({ method, kind: errorKind(error, clock.now()), network });
        }
      };
    },
    rpcHealth: (network) => ({ ...(healthOf.get(network) ?? none()) }),
    watchServer(server, port, routeOf) {
      // One child counter per (route, status): the hot path (status.json)
      // then costs a map lookup per request, not a label hash.
      const children = new Map<string, Counter.Internal>();
      const count = (route: string, status: string) => {
        const key = `${route} ${status}`;
        let child = children.get(key);
        if (!child) {
          child = httpRequests.labels({ port, route, status });
          children.set(key, child);
        }
        child.inc();
      };
      // NOTE: prepended, so it runs before the port's own handler answers.
      server.prependListener("request", (req: IncomingMessage, res: ServerResponse) => {
        res.once("close", () => {
          const url = req.url ?? "/";
          const query = url.indexOf("?");
          const route = routeOf(req.method ?? "GET", query === -1 ? url : url.slice(0, query));
          count(route, res.headersSent ? String(res.statusCode) : "aborted");
        });
      });
    },
  };
}
