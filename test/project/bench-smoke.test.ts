/**
 * Keeps `npm run bench` from rotting: a `--smoke` run (seconds, figures not
 * meaningful) must print every figure as a JSON line of the agreed shape and
 * a summary line, and write the same lines with --out. No timing is asserted.
 * It runs the bench compiled by the tests' global setup (test/helpers/build.ts),
 * the same code `npm run bench` runs through tsx.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, test } from "vitest";
import { built } from "../helpers/build.ts";
import { tempDir } from "../helpers/index.ts";

const FIGURES = [
  "derive_per_s",
  "derive_one_per_s",
  "match_logs_per_s",
  "baseline_http_rps",
  "status_rps",
  "baseline_insert_rps",
  "start_payment_rps",
  "start_payment_p99_ms",
  "start_payment_rps_flooded",
  "flood_ratio",
  "flood_connections_held",
  "flood_max_per_address",
  "flood_refused_503",
  "flood_refused_429",
  "flood_daemon_fds_peak",
  "detect_latency_ms_seen_p50",
  "detect_latency_ms_seen_max",
  "detect_latency_ms_postback_p50",
  "detect_latency_ms_postback_max",
  "detect_latency_ms_seen_p50_polygon",
  "detect_latency_ms_seen_max_polygon",
  "detect_latency_ms_postback_p50_polygon",
  "detect_latency_ms_postback_max_polygon",
  "backfill_blocks_per_s",
  "backfill_blocks_per_s_capped",
  "backfill_blocks_per_s_polygon",
  "backfill_missed_payments",
  "startup_ms_1m",
  "rss_mb_1m",
  "rss_peak_mb",
  "overdue_sweep_status_p99_ms",
  "overdue_sweep_rss_growth_mb",
  "overdue_sweep_per_s",
  "checkout_first_load_bytes",
  "checkout_page_rps",
  "detect_to_browser_ms_p50",
  "detect_to_browser_ms_max",
  "sse_connections",
  "sse_kb_per_connection",
  "sse_fanout_ms_p50",
  "sse_fanout_ms_p99",
  "sse_fanout_ms_max",
  "ops_status_seed_ms",
  "ops_scrape_p50_ms",
  "ops_scrape_p99_ms",
  "ops_scrape_cpu_ms",
  "ops_readyz_p99_ms",
  "ops_scrape_p99_ms_backlog",
  "pg_baseline_insert_rps",
  "pg_start_payment_rps",
  "pg_start_payment_p99_ms",
  "pg_status_rps",
  "failover_ms_p50",
  "failover_ms_max",
];

const dir = tempDir();
afterAll(() => dir.cleanup());

test("npm run bench -- --smoke prints every figure and a summary as JSON lines", async () => {
  const out = join(dir.path, "bench.jsonl");
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [built("test/bench/run.js"), "--smoke", "--out", out],
    { maxBuffer: 16 * 1024 * 1024, timeout: 170_000 },
  );
  const lines = stdout.trim().split("\n");
  const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  const figures = parsed.slice(0, -1);
  const summary = parsed.at(-1);

  expect(figures.map((f) => f.name)).toEqual(FIGURES);
  for (const f of figures) {
    expect(Object.keys(f)).toEqual(["name", "value", "unit", "baseline", "ratio", "target", "ok"]);
    expect(typeof f.value === "number" && Number.isFinite(f.value)).toBe(true);
    expect(typeof f.unit).toBe("string");
    expect(f.baseline === null || typeof f.baseline === "number").toBe(true);
    expect(f.ratio === null || typeof f.ratio === "number").toBe(true);
    expect(f.target === null || typeof f.target === "string").toBe(true);
    expect(typeof f.ok).toBe("boolean");
  }
  // Baselines measured in the same run come with their ratio.
  for (const name of [
    "status_rps",
    "start_payment_rps",
    "start_payment_rps_flooded",
    "derive_per_s",
    "checkout_page_rps",
    "backfill_blocks_per_s_polygon",
    "pg_start_payment_rps",
    "pg_start_payment_p99_ms",
    "pg_status_rps",
  ]) {
    const f = figures.find((x) => x.name === name);
    expect(typeof f?.baseline).toBe("number");
    expect(typeof f?.ratio).toBe("number");
  }
  // The backfill must never miss a payment, even in a smoke run.
  expect(figures.find((f) => f.name === "backfill_missed_payments")?.value).toBe(0);
  // The flood is held at the smoke run's caps (200 in total, 20 per address) and refused past them.
  const flood = (name: string) => figures.find((f) => f.name === name)?.value as number;
  expect(flood("flood_connections_held")).toBeLessThanOrEqual(200);
  expect(flood("flood_connections_held")).toBeGreaterThanOrEqual(190);
  expect(flood("flood_max_per_address")).toBe(20);
  expect(flood("flood_refused_503")).toBeGreaterThan(0);
  expect(flood("flood_refused_429")).toBeGreaterThan(0);
  expect(summary).toMatchObject({
    summary: true,
    smoke: true,
    figures: FIGURES.length,
    errors: [],
  });
  expect(readFileSync(out, "utf8")).toBe(`${lines.join("\n")}\n`);
}, 180_000);
