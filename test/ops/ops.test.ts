/**
 * The ops listener: /livez, /readyz and /metrics on a real daemon over real
 * sockets, against anvil (through the fault-injecting proxy where the node
 * must misbehave), plus the rules and queries behind them.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import type { Daemon } from "../../src/daemon.ts";
import { ConfigError } from "../../src/internal/errors.ts";
import {
  type Check,
  checkNetworksReadiness,
  checkReadiness,
  httpStatusOf,
  type ReadinessInputs,
  readinessBounds,
} from "../../src/ops/readiness.ts";
import { PAYMENT_STATUSES } from "../../src/payments/index.ts";
import { openDatabase, probeWritable } from "../../src/store/sqlite/index.ts";
import {
  COUNT_BY_STATUS_SQL,
  PENDING_SUMMARY_SQL,
  type WriteProbe,
} from "../../src/store/storage.ts";
import {
  paymentsOn,
  rpc,
  skewedClock,
  startPayment,
  startReceiver,
  startTestChain,
  startTestDaemon,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";
import { type Family, parsePrometheusText, sampleValue } from "../helpers/prom-text.ts";
import { rpcError, startRpcProxy } from "../helpers/proxy.ts";

const PAYER = ANVIL_ACCOUNTS[1] as Hex;

type Health = { status: "ok" | "degraded" | "failing"; checks: Record<string, Check> };

async function health(url: string): Promise<{ status: number; body: Health }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Health };
}

const failing = (body: Health) =>
  Object.entries(body.checks)
    .filter(([, check]) => !check.ok)
    .map(([name]) => name);

async function scrape(daemon: Daemon): Promise<Map<string, Family>> {
  const response = await fetch(`${daemon.opsUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(await response.text());
}

describe("readiness rules", () => {
  test("bounds: the scan may be confirmations + 5 blocks behind, the node must have answered within 60 s or 3 polls; set keys win", async () => {
    const ready = { maxHeadAge: 180_000, maxRpcLatency: 10_000 };
    expect(readinessBounds({ ready, confirmations: 12, pollIntervalMs: 2_000 })).toEqual({
      maxBlocksBehind: 17,
      maxHeadAgeMs: 180_000,
      maxRpcAgeMs: 60_000,
      maxRpcLatencyMs: 10_000,
      dbBusyTimeoutMs: 100,
    });
    expect(readinessBounds({ ready, confirmations: 3, pollIntervalMs: 600_000 }).maxRpcAgeMs).toBe(
      1_800_000,
    );
    expect(
      readinessBounds({
        ready: { ...ready, maxBlocksBehind: 2, maxRpcAge: 5_000 },
        confirmations: 3,
        pollIntervalMs: 2_000,
      }),
    ).toMatchObject({ maxBlocksBehind: 2, maxRpcAgeMs: 5_000 });
  });

  test("every check is named with its value and bound, and each one fails on its own", async () => {
    const bounds = readinessBounds({
      ready: { maxHeadAge: 180_000, maxRpcLatency: 10_000 },
      confirmations: 3,
      pollIntervalMs: 2_000,
    });
    const healthy: ReadinessInputs = {
      now: 1_000_000,
      database: { ok: true },
      rpcLastOkAt: 999_000,
      rpcLastOkLatencyMs: 12.4,
      head: 120,
      headSince: 990_000,
      scanned: 118,
    };
    expect(checkReadiness(healthy, bounds)).toEqual({
      status: "ok",
      checks: {
        database: { ok: true, value: "writable", bound: "write lock free within 100 ms" },
        rpc: { ok: true, value: 1_000, bound: 60_000, unit: "ms" },
        rpc_latency: { ok: true, value: 12, bound: 10_000, unit: "ms" },
        blocks_behind: { ok: true, value: 2, bound: 8, unit: "blocks" },
        head_age: { ok: true, value: 10_000, bound: 180_000, unit: "ms" },
      },
    });
    const cases: Array<[string, Partial<ReadinessInputs>]> = [
      ["database", { database: { ok: false, error: "database is locked" } }],
      ["rpc", { rpcLastOkAt: 1_000_000 - 60_001 }],
      ["rpc_latency", { rpcLastOkLatencyMs: 10_001 }],
      ["blocks_behind", { scanned: 111 }],
      ["head_age", { headSince: 1_000_000 - 180_001 }],
    ];
    for (const [name, change] of cases) {
      const answer = checkReadiness({ ...healthy, ...change }, bounds);
      expect(answer.status).toBe("failing");
      expect(failing(answer)).toEqual([name]);
    }
    expect(
      checkReadiness({ ...healthy, database: { ok: false, error: "database is locked" } }, bounds)
        .checks.database,
    ).toEqual({ ok: false, value: "database is locked", bound: "write lock free within 100 ms" });
    // Before the node's first answer nothing is known, and nothing passes for known.
    const fresh = checkReadiness(
      { ...healthy, rpcLastOkAt: null, rpcLastOkLatencyMs: null, head: null, headSince: null },
      bounds,
    );
    expect(failing(fresh)).toEqual(["rpc", "rpc_latency", "blocks_behind", "head_age"]);
    expect(fresh.checks.blocks_behind?.value).toBeNull();
  });

  test("several networks: ok (200) when all pass, degraded (200) while one network fails and another passes, failing (503) when every network fails or the database does", async () => {
    const bounds = readinessBounds({
      ready: { maxHeadAge: 180_000, maxRpcAge: 60_000, maxRpcLatency: 10_000 },
      confirmations: 3,
      pollIntervalMs: 2_000,
    });
    const now = 1_000_000;
    const current = {
      rpcLastOkAt: 999_000,
      rpcLastOkLatencyMs: 12,
      head: 120,
      headSince: 990_000,
      scanned: 119,
    };
    const down = { ...current, rpcLastOkAt: now - 60_001 };
    const answer = (
      ethereum: typeof current,
      polygon: typeof current,
      database: WriteProbe = { ok: true },
    ) =>
      checkNetworksReadiness({
        now,
        database,
        networks: [
          { name: "ethereum", inputs: ethereum, bounds },
          { name: "polygon", inputs: polygon, bounds },
        ],
      });
    const summary = (result: ReturnType<typeof answer>) => ({
      status: result.status,
      http: httpStatusOf(result),
      networks: result.networks,
      failing: failing(result),
    });
    expect(summary(answer(current, current))).toEqual({
      status: "ok",
      http: 200,
      networks: { ethereum: "ok", polygon: "ok" },
      failing: [],
    });
    expect(summary(answer(current, down))).toEqual({
      status: "degraded",
      http: 200,
      networks: { ethereum: "ok", polygon: "failing" },
      failing: ["polygon.rpc"],
    });
    expect(summary(answer(down, current))).toMatchObject({ status: "degraded", http: 200 });
    expect(summary(answer(down, down))).toEqual({
      status: "failing",
      http: 503,
      networks: { ethereum: "failing", polygon: "failing" },
      failing: ["ethereum.rpc", "polygon.rpc"],
    });
    expect(
      summary(
        answer(current, current, { ok: false, error: "attempt to write a readonly database" }),
      ),
    ).toEqual({
      status: "failing",
      http: 503,
      networks: { ethereum: "ok", polygon: "ok" },
      failing: ["database"],
    });
    // The single chain's answer has no degraded state: its one network failing is 503.
    const single = checkReadiness({ now, database: { ok: true }, ...down }, bounds);
    expect([single.status, httpStatusOf(single)]).toEqual(["failing", 503]);
  });

  test("the write probe fails while another connection holds the write lock, and on a read-only connection; it leaves the busy timeout as it was", async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, "probe.sqlite");
      const db = openDatabase({ path });
      expect(probeWritable(db)).toEqual({ ok: true });
      const other = new Database(path);
      other.exec("BEGIN IMMEDIATE");
      expect(probeWritable(db, { busyTimeoutMs: 10 })).toEqual({
        ok: false,
        error: "database is locked",
      });
      expect(db.inTransaction).toBe(false);
      expect(db.pragma("busy_timeout", { simple: true })).toBe(5000);
      other.exec("ROLLBACK");
      expect(probeWritable(db)).toEqual({ ok: true });
      const readonly = openDatabase({ path, readonly: true });
      expect(probeWritable(readonly)).toEqual({
        ok: false,
        error: "the database is open read-only",
      });
      for (const connection of [readonly, other, db]) connection.close();
    } finally {
      dir.cleanup();
    }
  });

  test("payments by status: the tallies follow creates, transitions and cancels without a rollback's, and a reopened database seeds them from the table", async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, "tallies.sqlite");
      const { db, payments } = await paymentsOn({ path });
      const a = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
      const b = await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
      await payments.create({ amount: tokens(1), data: null, postbackUrl: null, orderId: "o-1" });
      // The same order id again creates nothing.
      await payments.create({ amount: tokens(1), data: null, postbackUrl: null, orderId: "o-1" });
      await payments.cancel(a.id);
      await payments.cancel(a.id);
      // A batch that fails rolls back: the transition it decided does not count.
      await expect(
        payments.sink.applyBatch({
          fromBlock: 1,
          toBlock: 1,
          blocks: [],
          head: 1,
          transfers: [],
        }),
      ).rejects.toThrow("batch without its last block header");
      await payments.cancel(b.id);
      const counts = (statusOf: typeof db) =>
        Object.fromEntries(
          PAYMENT_STATUSES.map((status) => [
            status,
            (
              statusOf
                .prepare("SELECT count(*) AS n FROM payments WHERE status = ?")
                .get(status) as { n: number }
            ).n,
          ]),
        );
      const expected = { waiting: 1, seen: 0, paid: 0, expired: 0, cancelled: 2 };
      expect(counts(db)).toEqual(expected);
      expect(payments.tallies()).toEqual({
        byStatus: expected,
        created: 3,
        transitions: [{ from: "waiting", to: "cancelled", count: 2 }],
      });
      db.close();
      const reopened = await paymentsOn({ path });
      expect(await reopened.payments.tallies()).toEqual({
        byStatus: expected,
        created: 0,
        transitions: [],
      });
      reopened.db.close();
    } finally {
      dir.cleanup();
    }
  });

  test("a scrape's queries read indexes, never the payments or events table (EXPLAIN QUERY PLAN)", async () => {
    const db = openDatabase({ path: ":memory:" });
    const plan = (sql: string) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all()
        .map((row) => (row as { detail: string }).detail);
    expect(plan(COUNT_BY_STATUS_SQL)).toEqual([
      "SCAN payments USING COVERING INDEX payments_by_status",
    ]);
    expect(plan(PENDING_SUMMARY_SQL)).toEqual([
      "SCAN CONSTANT ROW",
      "SCALAR SUBQUERY 1",
      "SCAN events USING COVERING INDEX events_pending_since",
      "SCALAR SUBQUERY 2",
      "SEARCH events USING INDEX events_pending_since",
    ]);
    expect(plan("SELECT * FROM chain_cursor WHERE id = 1")).toEqual([
      "SEARCH chain_cursor USING INTEGER PRIMARY KEY (rowid=?)",
    ]);
    db.close();
  });

  test("config: ops.* keys are checked and named", async () => {
    const base = {
      chain: { rpcUrl: "http://127.0.0.1:1", chainId: 31337 },
      wallet: { xpub: DEV_XPUB },
      database: { path: "x" },
    };
    expect(
      parseConfig({
        ...base,
        ops: { enabled: false, port: 0, ready: { maxHeadAge: "10m", maxRpcAge: 30 } },
      }).ops,
    ).toEqual({
      enabled: false,
      host: "127.0.0.1",
      port: 0,
      ready: { maxHeadAge: 600_000, maxRpcAge: 30_000, maxRpcLatency: 10_000 },
    });
    let issues: string[] = [];
    try {
      parseConfig({
        ...base,
        ops: { port: 70_000, ready: { maxHeadAge: "0s", maxBlocksBehind: -1, extra: 1 } },
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      issues = error.issues;
    }
    expect(issues).toEqual([
      "ops.port: Too big: expected number to be <=65535",
      "ops.ready.maxBlocksBehind: Too small: expected number to be >=0",
      'ops.ready.maxHeadAge: expected a duration such as "500ms", "30s", "3m" or a whole number of seconds, above 0',
      'ops.ready: Unrecognized key: "extra"',
    ]);
  });
});

describe("the Prometheus text parser of these tests", () => {
  test("refuses what the format forbids, so a scrape that parses is well-formed", async () => {
    const good = [
      "# HELP a_total A counter.",
      "# TYPE a_total counter",
      'a_total{k="v \\"q\\" \\\\ \\n"} 3',
      "# TYPE h histogram",
      'h_bucket{le="1"} 1',
      'h_bucket{le="+Inf"} 2',
      "h_sum 4.5",
      "h_count 2",
      "g NaN",
      "",
    ].join("\n");
    const families = parsePrometheusText(good);
    expect(families.get("a_total")?.samples[0]?.labels).toEqual({ k: 'v "q" \\ \n' });
    expect(sampleValue(families, "h_count")).toBe(2);
    const bad: Array<[string, string]> = [
      ["no newline at the end", "a 1"],
      ["a bad name", "1a 1\n"],
      ["an unquoted label", "a{k=v} 1\n"],
      ["a bad value", "a one\n"],
      ["a TYPE after samples", "a 1\n# TYPE a gauge\n"],
      ["a family split in two", 'a 1\nb 1\na{k="v"} 1\n'],
      ["a duplicate series", 'a{k="v"} 1\na{k="v"} 2\n'],
      ["a negative counter", "# TYPE c counter\nc -1\n"],
      [
        "buckets that are not cumulative",
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      ],
      [
        "+Inf bucket other than the count",
        '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n',
      ],
    ];
    for (const [what, text] of bad) expect(() => parsePrometheusText(text), what).toThrow();
  });
});

describe("the ops listener of a running daemon", () => {
  let chain: TestChain;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    chain = await startTestChain();
    await chain.mint(chain.token, PAYER, tokens(1_000));
  });
  afterAll(async () => {
    await chain?.stop();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function dbPath(): string {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    return join(dir.path, "ops.sqlite");
  }

  async function daemonOn(
    rpcUrl: string,
    path: string,
    overrides: Parameters<typeof startTestDaemon>[2] = {},
    options: Parameters<typeof startTestDaemon>[3] = {},
  ): Promise<Daemon> {
    const daemon = await startTestDaemon({ rpcUrl, token: chain.token }, path, overrides, options);
    cleanups.push(() => daemon.stop());
    return daemon;
  }

  async function proxied() {
    const proxy = await startRpcProxy(chain.rpcUrl);
    cleanups.push(proxy.close);
    return proxy;
  }

  test("/livez answers 200 naming its checks while the database is locked and the node unreachable; /readyz answers 503 naming both", async () => {
    const proxy = await proxied();
    const path = dbPath();
    const daemon = await daemonOn(proxy.url, path, { ops: { ready: { maxRpcAge: "1s" } } });
    await waitFor(async () => (await health(`${daemon.opsUrl}/readyz`)).status === 200, {
      what: "ready",
    });
    proxy.setMode("drop");
    const locker = new Database(path);
    cleanups.push(() => locker.close());
    locker.exec("BEGIN IMMEDIATE");
    try {
      const ready = await waitFor(
        async () => {
          const answer = await health(`${daemon.opsUrl}/readyz`);
          return failing(answer.body).includes("rpc") ? answer : undefined;
        },
        { what: "readyz failing on rpc" },
      );
      expect(ready.status).toBe(503);
      expect(ready.body.status).toBe("failing");
      expect(failing(ready.body)).toEqual(["database", "rpc"]);
      expect(ready.body.checks.database).toEqual({
        ok: false,
        value: "database is locked",
        bound: "write lock free within 100 ms",
      });
      const live = await health(`${daemon.opsUrl}/livez`);
      expect(live.status).toBe(200);
      expect(live.body.status).toBe("ok");
      expect(Object.keys(live.body.checks)).toEqual(["process", "event_loop"]);
      expect(live.body.checks.event_loop).toMatchObject({ ok: true, bound: 10_000, unit: "ms" });
    } finally {
      locker.exec("ROLLBACK");
    }
  });

  test("/readyz: 200 when healthy, 503 naming the rpc check while the node does not answer, 200 once it answers again, 503 when its anvil is stopped", async () => {
    const second = await startTestChain();
    let stopped = false;
    cleanups.push(() => (stopped ? undefined : second.stop()));
    const proxy = await startRpcProxy(second.rpcUrl);
    cleanups.push(proxy.close);
    const daemon = await startTestDaemon({ rpcUrl: proxy.url, token: second.token }, dbPath(), {
      ops: { ready: { maxRpcAge: "1s" } },
    });
    cleanups.push(() => daemon.stop());

    const healthy = await waitFor(
      async () => {
        const answer = await health(`${daemon.opsUrl}/readyz`);
        return answer.status === 200 && answer.body.checks.blocks_behind?.value === 0
          ? answer
          : undefined;
      },
      { what: "ready and caught up" },
    );
    expect(healthy.body.status).toBe("ok");
    expect(Object.keys(healthy.body.checks)).toEqual([
      "database",
      "rpc",
      "rpc_latency",
      "blocks_behind",
      "head_age",
    ]);
    expect(healthy.body.checks.rpc).toMatchObject({ ok: true, bound: 1_000, unit: "ms" });
    expect(healthy.body.checks.blocks_behind).toEqual({
      ok: true,
      value: 0,
      bound: 8,
      unit: "blocks",
    });

    for (const mode of ["drop", "http500"] as const) {
      proxy.setMode(mode);
      const down = await waitFor(
        async () => {
          const answer = await health(`${daemon.opsUrl}/readyz`);
          return answer.status === 503 ? answer : undefined;
        },
        { what: `readyz 503 (${mode})` },
      );
      expect(failing(down.body)).toEqual(["rpc"]);
      expect(down.body.checks.rpc?.value).toBeGreaterThan(1_000);
      proxy.setMode("pass");
      await waitFor(async () => (await health(`${daemon.opsUrl}/readyz`)).status === 200, {
        what: "ready again",
        timeoutMs: 30_000,
      });
    }
    const errors = await scrape(daemon);
    expect(
      sampleValue(errors, "oxbtcpay_rpc_errors_total", {
        method: "eth_blockNumber",
        kind: "other",
      }),
    ).toBeGreaterThan(0);

    await second.stop();
    stopped = true;
    const gone = await waitFor(
      async () => {
        const answer = await health(`${daemon.opsUrl}/readyz`);
        return answer.status === 503 ? answer : undefined;
      },
      { what: "readyz 503 with anvil stopped" },
    );
    expect(failing(gone.body)).toEqual(["rpc"]);
  });

  test("/metrics parses as Prometheus text; blocks_behind grows while the node's logs fail (readyz names blocks_behind past the bound) and returns to 0", async () => {
    const proxy = await proxied();
    const daemon = await daemonOn(proxy.url, dbPath());
    const settled = await waitFor(
      async () => {
        const families = await scrape(daemon);
        const head = sampleValue(families, "oxbtcpay_chain_head_block");
        return sampleValue(families, "oxbtcpay_chain_scanned_block") === head && head >= 0
          ? head
          : undefined;
      },
      { what: "scan at the head" },
    );
    const families = await scrape(daemon);
    const types = Object.fromEntries([...families.values()].map((f) => [f.name, f.type]));
    expect(types).toMatchObject({
      oxbtcpay_build_info: "gauge",
      oxbtcpay_chain_head_block: "gauge",
      oxbtcpay_chain_scanned_block: "gauge",
      oxbtcpay_chain_blocks_behind: "gauge",
      oxbtcpay_chain_head_age_seconds: "gauge",
      oxbtcpay_chain_reorgs_total: "counter",
      oxbtcpay_rpc_request_duration_seconds: "histogram",
      oxbtcpay_rpc_errors_total: "counter",
      oxbtcpay_payments: "gauge",
      oxbtcpay_payment_transitions_total: "counter",
      oxbtcpay_payments_created_total: "counter",
      oxbtcpay_postback_deliveries_total: "counter",
      oxbtcpay_postback_queue_depth: "gauge",
      oxbtcpay_postback_oldest_pending_age_seconds: "gauge",
      oxbtcpay_http_requests_total: "counter",
      oxbtcpay_sse_connections: "gauge",
      // prom-client's default process metrics
      process_cpu_seconds_total: "counter",
      process_resident_memory_bytes: "gauge",
      nodejs_eventloop_lag_seconds: "gauge",
    });
    for (const family of families.values()) expect(family.help, family.name).toBeTruthy();
    const build = families.get("oxbtcpay_build_info")?.samples;
    expect(build).toEqual([
      {
        name: "oxbtcpay_build_info",
        labels: { version: "0.1.0", node_version: process.version },
        value: 1,
      },
    ]);
    expect(sampleValue(families, "oxbtcpay_chain_blocks_behind")).toBe(0);
    expect(
      sampleValue(families, "oxbtcpay_rpc_request_duration_seconds_count", {
        method: "eth_blockNumber",
      }),
    ).toBeGreaterThan(0);

    proxy.setHook((call) =>
      call.method === "eth_getLogs" ? rpcError(call, -32000, "logs unavailable") : undefined,
    );
    await chain.mine(5);
    const behind = await waitFor(
      async () => {
        const now = await scrape(daemon);
        const failed = now
          .get("oxbtcpay_rpc_errors_total")
          ?.samples.some((s) => s.labels.method === "eth_getLogs" && s.value > 0);
        return sampleValue(now, "oxbtcpay_chain_head_block") === settled + 5 && failed
          ? now
          : undefined;
      },
      { what: "the head 5 blocks on and eth_getLogs failing" },
    );
    expect(sampleValue(behind, "oxbtcpay_chain_scanned_block")).toBe(settled);
    expect(sampleValue(behind, "oxbtcpay_chain_blocks_behind")).toBe(5);
    expect(
      sampleValue(behind, "oxbtcpay_rpc_errors_total", { method: "eth_getLogs", kind: "other" }),
    ).toBeGreaterThan(0);
    // 5 behind is within confirmations (3) + 5; 10 is not.
    expect((await health(`${daemon.opsUrl}/readyz`)).status).toBe(200);
    await chain.mine(5);
    const late = await waitFor(
      async () => {
        const answer = await health(`${daemon.opsUrl}/readyz`);
        return answer.status === 503 ? answer : undefined;
      },
      { what: "readyz 503 on the lag" },
    );
    expect(failing(late.body)).toEqual(["blocks_behind"]);
    expect(late.body.checks.blocks_behind).toEqual({
      ok: false,
      value: 10,
      bound: 8,
      unit: "blocks",
    });

    proxy.setHook(undefined);
    const caughtUp = await waitFor(
      async () => {
        const now = await scrape(daemon);
        return sampleValue(now, "oxbtcpay_chain_blocks_behind") === 0 ? now : undefined;
      },
      { what: "blocks_behind back to 0", timeoutMs: 30_000 },
    );
    expect(sampleValue(caughtUp, "oxbtcpay_chain_scanned_block")).toBe(settled + 10);
    expect((await health(`${daemon.opsUrl}/readyz`)).status).toBe(200);
  });

  test("payments by status follow the lifecycle and match list_payments, before and after a restart; transitions, postbacks, SSE and HTTP routes are counted; no label holds an id, an address or a URL", async () => {
    const path = dbPath();
    const clock = skewedClock();
    const delivered = await startReceiver();
    cleanups.push(delivered.close);
    const refused = await startReceiver(() => 500);
    cleanups.push(refused.close);
    let daemon = await startTestDaemon(
      { rpcUrl: chain.rpcUrl, token: chain.token },
      path,
      {},
      { clock },
    );
    let running = true;
    cleanups.push(() => (running ? daemon.stop() : undefined));

    const pay = async (to: Hex, value: bigint) => {
      await chain.submitTransfer({ token: chain.token, from: PAYER, to, value });
      await chain.mine(1);
    };
    const statusOf = async (id: string) =>
      ((await (await fetch(`${daemon.publicUrl}/${id}/status.json`)).json()) as { status: string })
        .status;
    const call = async (method: string, params: Record<string, unknown>) => {
      const { json } = await rpc(daemon.privateUrl, { jsonrpc: "2.0", id: 1, method, params });
      if (!json.result) throw new Error(`${method}: ${JSON.stringify(json)}`);
      return json.result;
    };

    const paid = await startPayment(daemon.privateUrl, {
      amount: "1",
      postback_url: delivered.url,
    });
    const partial = await startPayment(daemon.privateUrl, {
      amount: "2",
      postback_url: refused.url,
      postback_events: ["payment.seen", "payment.paid"],
    });
    const cancelled = await startPayment(daemon.privateUrl, { amount: "1" });
    const expiring = await startPayment(daemon.privateUrl, { amount: "1", expires_in: 60 });
    const waiting = await startPayment(daemon.privateUrl, { amount: "1" });
    const payments = [paid, partial, cancelled, expiring, waiting];

    await pay(paid.address, tokens(1));
    await waitFor(async () => (await statusOf(paid.id)) === "seen", { what: "seen" });
    await chain.mine(2);
    await waitFor(async () => (await statusOf(paid.id)) === "paid", { what: "paid" });
    await pay(partial.address, tokens(1));
    await waitFor(async () => (await statusOf(partial.id)) === "seen", { what: "partial seen" });
    await call("cancel_payment", { id: cancelled.id });
    clock.skewMs = 61_000;
    await waitFor(async () => (await statusOf(expiring.id)) === "expired", { what: "expired" });
    // The outcomes are counted once recorded, a moment after the receivers answer.
    await waitFor(
      async () => {
        const now = await scrape(daemon);
        return (
          sampleValue(now, "oxbtcpay_postback_deliveries_total", { outcome: "delivered" }) === 1 &&
          sampleValue(now, "oxbtcpay_postback_deliveries_total", { outcome: "retry" }) >= 1
        );
      },
      { what: "one postback delivered, one refused" },
    );
    expect(delivered.received).toHaveLength(1);

    // An SSE stream, a checkout page, an asset and a 404 on the public port.
    const stream = new AbortController();
    const events = await fetch(`${daemon.publicUrl}/${waiting.id}/events`, {
      signal: stream.signal,
    });
    expect(events.status).toBe(200);
    await fetch(`${daemon.publicUrl}/${waiting.id}`).then((r) => r.text());
    await fetch(`${daemon.publicUrl}/${waiting.address}/status.json`).then((r) => r.text());
    await fetch(`${daemon.privateUrl}/${waiting.id}`).then((r) => r.text());
    await fetch(`${daemon.opsUrl}/${waiting.id}`).then((r) => r.text());
    const withStream = await scrape(daemon);
    expect(sampleValue(withStream, "oxbtcpay_sse_connections")).toBe(1);
    stream.abort();
    await waitFor(async () => sampleValue(await scrape(daemon), "oxbtcpay_sse_connections") === 0, {
      what: "the stream closed",
    });

    const expected = { waiting: 1, seen: 1, paid: 1, expired: 1, cancelled: 1 };
    const listed = async () =>
      Object.fromEntries(
        await Promise.all(
          PAYMENT_STATUSES.map(async (status) => [
            status,
            (await call("list_payments", { status, limit: 100 })).payments.length,
          ]),
        ),
      );
    const gauges = (families: Map<string, Family>) =>
      Object.fromEntries(
        PAYMENT_STATUSES.map((status) => [
          status,
          sampleValue(families, "oxbtcpay_payments", { status }),
        ]),
      );
    expect(await listed()).toEqual(expected);
    const families = await scrape(daemon);
    expect(gauges(families)).toEqual(expected);
    expect(sampleValue(families, "oxbtcpay_payments_created_total")).toBe(5);
    const transitions = Object.fromEntries(
      (families.get("oxbtcpay_payment_transitions_total")?.samples ?? []).map((s) => [
        `${s.labels.from}>${s.labels.to}`,
        s.value,
      ]),
    );
    expect(transitions).toEqual({
      "waiting>seen": 2,
      "seen>paid": 1,
      "waiting>cancelled": 1,
      "waiting>expired": 1,
    });
    expect(
      sampleValue(families, "oxbtcpay_postback_deliveries_total", { outcome: "delivered" }),
    ).toBe(1);
    expect(
      sampleValue(families, "oxbtcpay_postback_deliveries_total", { outcome: "retry" }),
    ).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, "oxbtcpay_postback_deliveries_total", { outcome: "failed" })).toBe(
      0,
    );
    expect(sampleValue(families, "oxbtcpay_postback_queue_depth")).toBe(1);
    expect(
      sampleValue(families, "oxbtcpay_postback_oldest_pending_age_seconds"),
    ).toBeGreaterThanOrEqual(0);

    const routes = (families.get("oxbtcpay_http_requests_total")?.samples ?? []).map(
      (s) => `${s.labels.port} ${s.labels.route}`,
    );
    expect(new Set(routes)).toEqual(
      new Set([
        "private /",
        "private other",
        "public /:id/status.json",
        "public /:id/events",
        "public /:id",
        "public other",
        "ops /metrics",
        "ops other",
      ]),
    );
    expect(
      sampleValue(families, "oxbtcpay_http_requests_total", {
        port: "public",
        route: "/:id/events",
        status: "200",
      }),
    ).toBe(1);

    // No label value anywhere names a payment, an address or a URL.
    const secrets = payments.flatMap((p) => [p.id, p.address.toLowerCase()]);
    const values = [...families.values()].flatMap((family) =>
      family.samples.flatMap((sample) => Object.values(sample.labels)),
    );
    expect(values.length).toBeGreaterThan(50);
    for (const value of values) {
      expect(value).not.toMatch(/(^|[^0-9a-f])[0-9a-f]{16}([^0-9a-f]|$)/i);
      expect(value).not.toMatch(/0x[0-9a-f]{40}/i);
      expect(value).not.toMatch(/[a-z][a-z0-9+.-]*:\/\//i);
      for (const secret of secrets) expect(value.toLowerCase()).not.toContain(secret);
    }

    // A restart seeds the gauge from the table.
    await daemon.stop();
    running = false;
    daemon = await startTestDaemon(
      { rpcUrl: chain.rpcUrl, token: chain.token },
      path,
      {},
      { clock },
    );
    running = true;
    expect(gauges(await scrape(daemon))).toEqual(expected);
    expect(await listed()).toEqual(expected);
  });

  test("ops.enabled false: no ops listener; otherwise unknown paths are 404 and other methods 405", async () => {
    const off = await daemonOn(chain.rpcUrl, dbPath(), { ops: { enabled: false } });
    expect(off.opsUrl).toBeUndefined();
    const on = await daemonOn(chain.rpcUrl, dbPath());
    expect(on.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const missing = await fetch(`${on.opsUrl}/health`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "not found" });
    const post = await fetch(`${on.opsUrl}/metrics`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await fetch(`${on.opsUrl}/livez`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });
});
