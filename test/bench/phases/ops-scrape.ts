/**
 * ops_scrape: what the ops port costs with 1,000,000 payments (2 % waiting,
 * 1 % seen, 60 % paid, 35 % expired, 2 % cancelled, written by SQL) and
 * 600,000 postback events, 1,000 of them pending: GET /metrics and GET
 * /readyz one after the other over a keep-alive connection from this
 * process, after a warm-up, and the daemon's CPU time per scrape (/proc).
 * Then /metrics again with a backlog of 100,000 pending events: the queue
 * gauges read the pending rows (partial index), the one part of a scrape
 * that grows, with the queue and not with the history.
 *
 * ops_status_seed_ms is the one GROUP BY the daemon runs at start to seed
 * payments by status. The query plans of what a scrape and the seed run
 * are printed on stderr (docs/benchmarks.md).
 */
import { join } from "node:path";
import { openDatabase } from "../../../src/store/sqlite/index.ts";
import { COUNT_BY_STATUS_SQL, PENDING_SUMMARY_SQL } from "../../../src/store/storage.ts";
import { cpuMsOf, spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { figure, median, percentile, progress } from "../report.ts";
import { makeEventsPending, SQL_SEED_MIX, seedPaymentsBySql } from "../seed.ts";

/** The queries behind a scrape (and the start-up seed), as the store runs them. */
const QUERIES = {
  seed: COUNT_BY_STATUS_SQL,
  queue: PENDING_SUMMARY_SQL,
  cursor: "SELECT * FROM chain_cursor WHERE id = 1",
};

/** Times `count` sequential GETs of `url` (body read), in ms. */
async function timeGets(url: string, count: number, expectStatus: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await fetch(url);
    await response.text();
    times.push(performance.now() - started);
    if (response.status !== expectStatus) {
      throw new Error(`${url} answered ${response.status}, expected ${expectStatus}`);
    }
  }
  return times;
}

/** The value of a sample line `name{labels} value` in a scrape, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export const opsScrapePhase: Phase = {
  name: "ops_scrape",
  figures: [
    { name: "ops_status_seed_ms", unit: "ms" },
    { name: "ops_scrape_p50_ms", unit: "ms" },
    { name: "ops_scrape_p99_ms", unit: "ms" },
    { name: "ops_scrape_cpu_ms", unit: "ms" },
    { name: "ops_readyz_p99_ms", unit: "ms" },
    { name: "ops_scrape_p99_ms_backlog", unit: "ms" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const total = smoke ? 10_000 : 1_000_000;
    const pending = smoke ? 100 : 1_000;
    const backlog = smoke ? 1_000 : 100_000;
    const scrapes = smoke ? 20 : 1_000;
    const path = join(workDir, "ops.sqlite");

    progress(`ops_scrape: seeding ${total} payments and their events with SQL`);
    const seededAt = performance.now();
    seedPaymentsBySql({ path, total, pendingEvents: pending });
    progress(`ops_scrape: seeded in ${((performance.now() - seededAt) / 1000).toFixed(1)} s`);

    const db = openDatabase({ path, migrate: false });
    try {
      for (const [name, sql] of Object.entries(QUERIES)) {
        const plan = db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all()
          .map((row) => (row as { detail: string }).detail);
        progress(`ops_scrape: query plan of ${name}: ${plan.join("; ")}`);
      }
      const seed = db.prepare(QUERIES.seed);
      const seedTimes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        seed.all();
        seedTimes.push(performance.now() - started);
      }
      emit(figure("ops_status_seed_ms", median(seedTimes), "ms"));
    } finally {
      db.close();
    }

    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path),
      profile: context.profile("ops-daemon"),
    });
    try {
      if (!daemon.opsUrl) throw new Error("the daemon has no ops listener");
      const metricsUrl = `${daemon.opsUrl}/metrics`;
      // Ready once the first poll scanned to the head.
      for (let i = 0; ; i++) {
        const response = await fetch(`${daemon.opsUrl}/readyz`);
        await response.text();
        if (response.status === 200) break;
        if (i > 600) throw new Error("the daemon never became ready");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const first = await (await fetch(metricsUrl)).text();
      const paid = sample(first, 'oxbtcpay_payments{status="paid"}');
      const depth = sample(first, "oxbtcpay_postback_queue_depth");
      if (paid !== (total * SQL_SEED_MIX.paid) / 100 || depth !== pending) {
        throw new Error(`unexpected scrape: paid ${paid}, queue depth ${depth}`);
      }
      progress(`ops_scrape: a scrape is ${Buffer.byteLength(first)} bytes`);

      await timeGets(metricsUrl, Math.ceil(scrapes / 10), 200);
      const cpuBefore = cpuMsOf(daemon.pid);
      const times = await timeGets(metricsUrl, scrapes, 200);
      const cpuPerScrape = (cpuMsOf(daemon.pid) - cpuBefore) / scrapes;
      const readyz = await timeGets(`${daemon.opsUrl}/readyz`, scrapes, 200);
      progress(
        `ops_scrape: /metrics p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms, ${cpuPerScrape.toFixed(2)} ms CPU each; /readyz p99 ${percentile(readyz, 99).toFixed(2)} ms`,
      );
      emit(figure("ops_scrape_p50_ms", percentile(times, 50), "ms"));
      emit(
        figure("ops_scrape_p99_ms", percentile(times, 99), "ms", {
          target: { on: "value", op: "<=", limit: 50 },
        }),
      );
      emit(figure("ops_scrape_cpu_ms", cpuPerScrape, "ms"));
      emit(
        figure("ops_readyz_p99_ms", percentile(readyz, 99), "ms", {
          target: { on: "value", op: "<=", limit: 20 },
        }),
      );

      progress(`ops_scrape: a backlog of ${backlog} pending postbacks`);
      makeEventsPending({ path, count: backlog });
      const backlogText = await (await fetch(metricsUrl)).text();
      const backlogDepth = sample(backlogText, "oxbtcpay_postback_queue_depth");
      if (backlogDepth !== backlog) throw new Error(`queue depth ${backlogDepth}, not ${backlog}`);
      const backlogTimes = await timeGets(metricsUrl, Math.max(20, scrapes / 10), 200);
      progress(
        `ops_scrape: with the backlog, /metrics p50 ${percentile(backlogTimes, 50).toFixed(2)} ms, p99 ${percentile(backlogTimes, 99).toFixed(2)} ms`,
      );
      emit(figure("ops_scrape_p99_ms_backlog", percentile(backlogTimes, 99), "ms"));
    } finally {
      await daemon.stop();
    }
  },
};
