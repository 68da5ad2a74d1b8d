/**
 * When the daemon is live and when it is ready, as pure functions of what
 * the ops room read: each check has a name, a value, a bound and whether
 * the value is within it, and the answers list them all.
 */
import type { WriteProbe } from "../store/storage.ts";
import { DB_PROBE_BUSY_TIMEOUT_MS } from "../store/storage.ts";

/** One check of /livez or /readyz. `value` null: not known yet (fails). */
export type Check = {
  ok: boolean;
  value: number | string | null;
  bound: number | string;
  unit?: string;
};

/**
 * "ok": every check passes (HTTP 200). "degraded" (with `networks` only,
 * HTTP 200): the database and at least one network pass, another network
 * fails. "failing" (HTTP 503): anything else.
 */
export type HealthStatus = "ok" | "degraded" | "failing";

export type HealthAnswer = {
  status: HealthStatus;
  checks: Record<string, Check>;
  /** With `networks`: each network's own verdict (its checks are named "<network>.<check>"). */
  networks?: Record<string, "ok" | "failing">;
};

/** The HTTP status of a health answer: 503 only when it is failing. */
export function httpStatusOf(answer: Pick<HealthAnswer, "status">): 200 | 503 {
  return answer.status === "failing" ? 503 : 200;
}

/** The bounds of /readyz, in ms and blocks. */
export type ReadinessBounds = {
  maxBlocksBehind: number;
  maxHeadAgeMs: number;
  maxRpcAgeMs: number;
  maxRpcLatencyMs: number;
  /** The probe's busy timeout: how long another process may hold the write lock. */
  dbBusyTimeoutMs: number;
};

/** Blocks the scan may lag beyond the confirmations before it counts as behind. */
export const EXTRA_BLOCKS_BEHIND = 5;
/** The RPC node must have answered within this long, or 3 polls, the longer. */
export const MIN_RPC_AGE_MS = 60_000;
/** A heartbeat later than this means the event loop was stuck (livez fails). */
export const MAX_EVENT_LOOP_LAG_MS = 10_000;

/**
 * The bounds from the `ops.ready` keys; the unset ones follow the chain:
 * the scan may be `confirmations + 5` blocks behind (a payment is then late
 * by a few blocks at most), and the node must have answered within 60 s or
 * 3 poll intervals (a slow poll interval polls less often).
 */
export function readinessBounds({
  ready,
  confirmations,
  pollIntervalMs,
}: {
  ready: {
    maxBlocksBehind?: number | undefined;
    maxHeadAge: number;
    maxRpcAge?: number | undefined;
    maxRpcLatency: number;
  };
  confirmations: number;
  pollIntervalMs: number;
}): ReadinessBounds {
  return {
    maxBlocksBehind: ready.maxBlocksBehind ?? confirmations + EXTRA_BLOCKS_BEHIND,
    maxHeadAgeMs: ready.maxHeadAge,
    maxRpcAgeMs: ready.maxRpcAge ?? Math.max(MIN_RPC_AGE_MS, 3 * pollIntervalMs),
    maxRpcLatencyMs: ready.maxRpcLatency,
    dbBusyTimeoutMs: DB_PROBE_BUSY_TIMEOUT_MS,
  };
}

/** What /readyz reads: all in memory but the write probe and the scan cursor (one row). */
export type ReadinessInputs = {
  now: number;
  database: WriteProbe;
  /** When the RPC node last answered and how long that took; null: never yet. */
  rpcLastOkAt: number | null;
  rpcLastOkLatencyMs: number | null;
  /** The newest head the node gave, and since when it has not changed; null: none yet. */
  head: number | null;
  headSince: number | null;
  /** The last block fully scanned; null: no cursor yet. */
  scanned: number | null;
};

const within = (value: number | null, bound: number) => value !== null && value <= bound;

/** /readyz: ready only if every check passes. */
export function checkReadiness(inputs: ReadinessInputs, bounds: ReadinessBounds): HealthAnswer {
  const { now } = inputs;
  const rpcAge = inputs.rpcLastOkAt === null ? null : Math.max(0, now - inputs.rpcLastOkAt);
  const latency = inputs.rpcLastOkLatencyMs === null ? null : Math.round(inputs.rpcLastOkLatencyMs);
  const behind =
    inputs.head === null || inputs.scanned === null
      ? null
      : Math.max(0, inputs.head - inputs.scanned);
  const headAge = inputs.headSince === null ? null : Math.max(0, now - inputs.headSince);
  const checks: Record<string, Check> = {
    database: {
      ok: inputs.database.ok,
      value: inputs.database.ok ? "writable" : inputs.database.error,
      bound: `write lock free within ${bounds.dbBusyTimeoutMs} ms`,
    },
    rpc: {
      ok: within(rpcAge, bounds.maxRpcAgeMs),
      value: rpcAge,
      bound: bounds.maxRpcAgeMs,
      unit: "ms",
    },
    rpc_latency: {
      ok: within(latency, bounds.maxRpcLatencyMs),
      value: latency,
      bound: bounds.maxRpcLatencyMs,
      unit: "ms",
    },
    blocks_behind: {
      ok: within(behind, bounds.maxBlocksBehind),
      value: behind,
      bound: bounds.maxBlocksBehind,
      unit: "blocks",
    },
    head_age: {
      ok: within(headAge, bounds.maxHeadAgeMs),
      value: headAge,
      bound: bounds.maxHeadAgeMs,
      unit: "ms",
    },
  };
  return { status: Object.values(checks).every((c) => c.ok) ? "ok" : "failing", checks };
}

/** One network's readiness inputs and bounds. */
export type NetworkReadiness = {
  name: string;
  inputs: Omit<ReadinessInputs, "now" | "database">;
  bounds: ReadinessBounds;
};

/**
 * /readyz with `networks`: the database, then each network's checks named
 * "<network>.rpc", "<network>.blocks_behind", …, and each network's verdict
 * in `networks`. "ok" when every check passes; "degraded" (still ready)
 * when the database and at least one network pass: payments keep
 * completing on that network and status pages keep answering, so one
 * flaky provider does not take the replica out of a load balancer (its
 * metrics, labelled by network, are what to alert on); "failing" when the
 * database fails or every network does.
 */
export function checkNetworksReadiness({
  now,
  database,
  networks,
}: {
  now: number;
  database: WriteProbe;
  networks: readonly NetworkReadiness[];
}): HealthAnswer {
  let databaseCheck: Check | undefined;
  const checks: Record<string, Check> = {};
  const verdicts: Record<string, "ok" | "failing"> = {};
  const perNetwork: Array<[string, Check]> = [];
  for (const { name, inputs, bounds } of networks) {
    const answer = checkReadiness({ ...inputs, now, database }, bounds);
    const { database: probe, ...own } = answer.checks;
    databaseCheck ??= probe;
    for (const [check, value] of Object.entries(own)) perNetwork.push([`${name}.${check}`, value]);
    verdicts[name] = Object.values(own).every((c) => c.ok) ? "ok" : "failing";
  }
  if (databaseCheck) checks.database = databaseCheck;
  for (const [name, check] of perNetwork) checks[name] = check;
  const current = Object.values(verdicts).filter((verdict) => verdict === "ok").length;
  const status: HealthStatus =
    databaseCheck?.ok !== true || current === 0
      ? "failing"
      : current === networks.length
        ? "ok"
        : "degraded";
  return { status, checks, networks: verdicts };
}

/** /livez: the process runs and its event loop turns (it answered; no database, no RPC). */
export function checkLiveness({
  uptimeMs,
  eventLoopLagMs,
}: {
  uptimeMs: number;
  eventLoopLagMs: number;
}): HealthAnswer {
  const lag = Math.round(eventLoopLagMs);
  return {
    status: lag <= MAX_EVENT_LOOP_LAG_MS ? "ok" : "failing",
    checks: {
      process: { ok: true, value: Math.round(uptimeMs), bound: "running", unit: "ms" },
      event_loop: {
        ok: lag <= MAX_EVENT_LOOP_LAG_MS,
        value: lag,
        bound: MAX_EVENT_LOOP_LAG_MS,
        unit: "ms",
      },
    },
  };
}
