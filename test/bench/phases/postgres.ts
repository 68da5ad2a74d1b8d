/**
 * The daemon on PostgreSQL (`database.url`), against a throwaway local
 * cluster started for the phase (test/helpers/postgres.ts: fsync and
 * synchronous_commit on, so every commit is durable):
 *
 * - pg_start_payment_rps, pg_start_payment_p99_ms: start_payment on the
 *   private port, 20 connections, the start_payment phase's body, one daemon
 *   on PostgreSQL. The baseline (pg_baseline_insert_rps, and the p99's) is
 *   the floor of one durable commit per request on the same server: 20
 *   connections from the bench process with `pg` directly, each a loop of
 *   single-row INSERTs in autocommit into a scratch table.
 * - pg_status_rps: GET /<id>/status.json, 50 connections, random ids among
 *   the payments that load created, on the same daemon; the baseline is the
 *   status phase's bare node:http server answering with the same bytes.
 *   Rounds alternate baseline and daemon; medians.
 * - failover_ms_p50, failover_ms_max: replicas on that database (the daemon
 *   above leads; one or two more follow), kill -9 of the leader, and at once
 *   one block mined: from the kill to the chain cursor in PostgreSQL
 *   reaching that block, scanned by the survivor whose oxbtcpay_is_leader
 *   gauge says 1. The killed replica is started again before the next kill.
 */
import pg from "pg";
import { anvilCall } from "../../helpers/index.ts";
import { type PostgresCluster, startPostgres } from "../../helpers/postgres.ts";
import { parsePrometheusText, sampleValue } from "../../helpers/prom-text.ts";
import { type DaemonChild, spawnBaseline, spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { describeLoad, type LoadResult, runLoad } from "../load.ts";
import { figure, median, percentile, progress } from "../report.ts";
import { BODY, CONNECTIONS } from "./start-payment.ts";
import { baselineHeaders } from "./status.ts";

const STATUS_CONNECTIONS = 50;
/** start_payment's rate against the same run's bare inserts (the absolute moves with the machine). */
const START_PAYMENT_TARGET = 0.5;
/** start_payment's p99 against the bare inserts' p99. */
const START_PAYMENT_P99_TARGET = 2;
const STATUS_TARGET = 0.8;
/** Longest wait for a new leader's first scan before the phase gives up. */
const FAILOVER_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function checked(what: string, result: LoadResult): LoadResult {
  if (result.non2xx > 0 || result.errors > 0 || result.responses === 0) {
    throw new Error(`${what}: ${describeLoad(result)}`);
  }
  return result;
}

/** Resolves once the daemon has a scan position in the database (its first poll). */
async function waitForScanStart(admin: pg.Client): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { n } = await queryOne<{ n: string }>(admin, "SELECT count(*) AS n FROM chain_cursor");
    if (Number(n) > 0) return;
    if (Date.now() > deadline) throw new Error("the daemon never scanned: no chain_cursor row");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function queryOne<T>(client: pg.Client, sql: string): Promise<T> {
  const { rows } = await client.query(sql);
  if (rows[0] === undefined) throw new Error(`no row: ${sql}`);
  return rows[0] as T;
}

/**
 * The bare-insert baseline: `connections` clients, each committing one row
 * at a time for `seconds` (autocommit, synchronous_commit on, as the
 * daemon's pool sets it). Rate and latencies of the whole run.
 */
async function bareInserts(
  url: string,
  { connections, seconds }: { connections: number; seconds: number },
): Promise<{ rps: number; p50Ms: number; p99Ms: number; rows: number }> {
  const clients = Array.from(
    { length: connections },
    () => new pg.Client({ connectionString: url, options: "-c synchronous_commit=on" }),
  );
  try {
    await Promise.all(clients.map((client) => client.connect()));
    const latencies: number[] = [];
    const began = performance.now();
    const until = began + seconds * 1000;
    await Promise.all(
      clients.map(async (client) => {
        while (performance.now() < until) {
          const sent = performance.now();
          await client.query("INSERT INTO bench_insert (body, created_at) VALUES ($1, $2)", [
            BODY,
            Date.now(),
          ]);
          latencies.push(performance.now() - sent);
        }
      }),
    );
    const elapsedS = (performance.now() - began) / 1000;
    return {
      rps: latencies.length / elapsedS,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      rows: latencies.length,
    };
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
  }
}

/** The replica's oxbtcpay_is_leader gauge; false if it does not answer. */
async function isLeader(replica: DaemonChild): Promise<boolean> {
  try {
    const response = await fetch(`${replica.opsUrl}/metrics`, {
      signal: AbortSignal.timeout(2_000),
    });
    const families = parsePrometheusText(await response.text());
    return sampleValue(families, "oxbtcpay_is_leader") === 1;
  } catch {
    return false;
  }
}

/** The one replica whose gauge says it leads, once exactly one does. */
async function leaderAmong(replicas: readonly DaemonChild[]): Promise<DaemonChild> {
  const deadline = performance.now() + FAILOVER_TIMEOUT_MS;
  for (;;) {
    const leading = (await Promise.all(replicas.map(isLeader))).flatMap((yes, i) =>
      yes ? [replicas[i] as DaemonChild] : [],
    );
    if (leading.length === 1) return leading[0] as DaemonChild;
    if (performance.now() > deadline) {
      throw new Error(`${leading.length} of ${replicas.length} replicas say they lead`);
    }
    await sleep(20);
  }
}

export const postgresPhase: Phase = {
  name: "postgres",
  figures: [
    { name: "pg_baseline_insert_rps", unit: "req/s" },
    { name: "pg_start_payment_rps", unit: "req/s" },
    { name: "pg_start_payment_p99_ms", unit: "ms" },
    { name: "pg_status_rps", unit: "req/s" },
    { name: "failover_ms_p50", unit: "ms" },
    { name: "failover_ms_max", unit: "ms" },
  ],
  async run(context: BenchContext) {
    const { smoke, chain, emit } = context;
    const loadS = smoke ? 0.5 : 30;
    const baselineS = smoke ? 0.5 : 10;
    const warmupS = smoke ? 0.25 : 3;
    const roundS = smoke ? 0.5 : 5;
    const statusWarmupS = smoke ? 0 : 3;
    const rounds = smoke ? 1 : 3;
    const kills = smoke ? 2 : 10;
    const replicaCount = smoke ? 2 : 3;

    let cluster: PostgresCluster | undefined;
    let admin: pg.Client | undefined;
    const replicas: DaemonChild[] = [];
    try {
      progress("postgres: starting a throwaway cluster (fsync and synchronous_commit on)");
      cluster = await startPostgres();

      // 1. The bare-insert baseline, on a database of its own.
      const scratchUrl = await cluster.createDatabase("bench_insert");
      {
        const client = new pg.Client({ connectionString: scratchUrl });
        await client.connect();
        await client
          .query(
            "CREATE TABLE bench_insert (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL, created_at BIGINT NOT NULL)",
          )
          .finally(() => client.end());
      }
      progress(
        `postgres: bare-insert baseline warm-up ${smoke ? 0 : warmupS} s, then ${baselineS} s`,
      );
      if (!smoke) await bareInserts(scratchUrl, { connections: CONNECTIONS, seconds: warmupS });
      const base = await bareInserts(scratchUrl, { connections: CONNECTIONS, seconds: baselineS });
      progress(
        `postgres bare inserts: ${base.rps.toFixed(0)} rows/s, p50 ${base.p50Ms.toFixed(2)} ms, p99 ${base.p99Ms.toFixed(2)} ms, ${CONNECTIONS} connections`,
      );

      // 2. start_payment on the daemon on PostgreSQL.
      const url = await cluster.createDatabase("daemon");
      admin = new pg.Client({ connectionString: url });
      await admin.connect();
      const config = daemonConfig(chain, { url });
      const spawnReplica = async (name: string) => {
        const replica = await spawnDaemon({
          config,
          profile: context.profile(`postgres-${name}`),
          keepLogs: "tail",
        });
        replicas.push(replica);
        return replica;
      };
      const daemon = await spawnReplica("daemon");
      const countPayments = async () =>
        Number(
          (await queryOne<{ n: string }>(admin as pg.Client, "SELECT count(*) AS n FROM payments"))
            .n,
        );
      const startPayments = (seconds: number) =>
        runLoad({
          url: `${daemon.privateUrl}/`,
          connections: CONNECTIONS,
          durationS: seconds,
          method: "POST",
          body: BODY,
          headers: { "content-type": "application/json" },
          serverPid: daemon.pid,
        });
      // A new database: start_payment waits for the first scan position;
      // the load starts once there is one.
      await waitForScanStart(admin as pg.Client);
      progress(`postgres start_payment: daemon warm-up ${warmupS} s, then ${loadS} s`);
      checked("start_payment warm-up", await startPayments(warmupS));
      const before = await countPayments();
      const created = checked("start_payment", await startPayments(loadS));
      const rows = (await countPayments()) - before;
      // Responses still in flight when autocannon stops may have committed too.
      if (rows < created.responses) {
        throw new Error(
          `start_payment: ${created.responses} answers but only ${rows} payments in the database`,
        );
      }
      progress(`postgres start_payment daemon: ${describeLoad(created)}`);
      emit(figure("pg_baseline_insert_rps", base.rps, "req/s"));
      emit(
        figure("pg_start_payment_rps", created.rps, "req/s", {
          baseline: base.rps,
          target: { on: "ratio", op: ">=", limit: START_PAYMENT_TARGET },
        }),
      );
      emit(
        figure("pg_start_payment_p99_ms", created.p99Ms, "ms", {
          baseline: base.p99Ms,
          target: { on: "ratio", op: "<=", limit: START_PAYMENT_P99_TARGET },
        }),
      );

      // 3. status.json on the same daemon, against the bare node:http server.
      const { rows: idRows } = await admin.query<{ id: string }>(
        "SELECT id FROM payments ORDER BY random() LIMIT 10000",
      );
      const ids = idRows.map((row) => row.id);
      const sample = await fetch(`${daemon.publicUrl}/${ids[0]}/status.json`);
      const body = await sample.text();
      if (sample.status !== 200) throw new Error(`status.json answered ${sample.status}: ${body}`);
      const baseline = await spawnBaseline(
        { mode: "status", headers: baselineHeaders(sample), body },
        context.profile("postgres-status-baseline"),
      );
      try {
        const path = () => `/${ids[Math.floor(Math.random() * ids.length)]}/status.json`;
        const load = (target: string, pid: number, durationS: number) =>
          runLoad({
            url: target,
            connections: STATUS_CONNECTIONS,
            durationS,
            path,
            serverPid: pid,
          });
        progress(
          `postgres status: ${ids.length} payments, warm-up ${statusWarmupS} s each, ${body.length} B body`,
        );
        if (statusWarmupS > 0) {
          await load(baseline.url, baseline.pid, statusWarmupS);
          await load(daemon.publicUrl, daemon.pid, statusWarmupS);
        }
        const baselineRps: number[] = [];
        const daemonRps: number[] = [];
        for (let round = 1; round <= rounds; round++) {
          const b = checked("status baseline", await load(baseline.url, baseline.pid, roundS));
          progress(`postgres status round ${round}/${rounds} baseline: ${describeLoad(b)}`);
          const d = checked("status daemon", await load(daemon.publicUrl, daemon.pid, roundS));
          progress(`postgres status round ${round}/${rounds} daemon:   ${describeLoad(d)}`);
          baselineRps.push(b.rps);
          daemonRps.push(d.rps);
        }
        emit(
          figure("pg_status_rps", median(daemonRps), "req/s", {
            baseline: median(baselineRps),
            target: { on: "ratio", op: ">=", limit: STATUS_TARGET },
          }),
        );
      } finally {
        await baseline.stop();
      }

      // 4. Failover: kill -9 the leader, mine a block at once, time the new leader's scan of it.
      for (let i = 2; i <= replicaCount; i++) await spawnReplica(`replica-${i}`);
      const cursor = async () =>
        Number(
          (
            await queryOne<{ n: string }>(
              admin as pg.Client,
              "SELECT max(block_number) AS n FROM chain_cursor",
            )
          ).n,
        );
      const head = async () => Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
      progress(`postgres failover: ${replicaCount} replicas, ${kills} kills of the leader`);
      const failovers: number[] = [];
      for (let kill = 1; kill <= kills; kill++) {
        const alive = [...replicas];
        const leader = await leaderAmong(alive);
        // The leader has scanned up to the head: the block mined after the kill is the only new one.
        const caughtUp = await head();
        const waitFrom = performance.now();
        while ((await cursor()) < caughtUp) {
          if (performance.now() - waitFrom > FAILOVER_TIMEOUT_MS) {
            throw new Error(`the leader's cursor did not reach block ${caughtUp}`);
          }
          await sleep(20);
        }
        const killedAt = performance.now();
        await leader.kill();
        await chain.mine(1);
        const mined = await head();
        const survivors = alive.filter((r) => r !== leader);
        const next = await leaderAmong(survivors);
        const electedMs = performance.now() - killedAt;
        while ((await cursor()) < mined) {
          if (performance.now() - killedAt > FAILOVER_TIMEOUT_MS) {
            throw new Error(`no replica scanned block ${mined} after the leader was killed`);
          }
          await sleep(5);
        }
        const failoverMs = performance.now() - killedAt;
        failovers.push(failoverMs);
        progress(
          `postgres failover ${kill}/${kills}: leader pid ${leader.pid} killed, pid ${next.pid} leads after ${electedMs.toFixed(0)} ms, scanned block ${mined} after ${failoverMs.toFixed(0)} ms`,
        );
        replicas.splice(replicas.indexOf(leader), 1);
        if (kill < kills) await spawnReplica(`replica-restart-${kill}`);
      }
      emit(figure("failover_ms_p50", median(failovers), "ms"));
      emit(figure("failover_ms_max", Math.max(...failovers), "ms"));
    } catch (error) {
      for (const replica of replicas) {
        const problems = replica
          .logs()
          .split("\n")
          .filter((line) => /"level":(40|50|60)/.test(line));
        progress(
          `postgres: replica pid ${replica.pid}, last warnings and errors:\n${problems.slice(-10).join("\n")}`,
        );
      }
      throw error;
    } finally {
      const stopping = performance.now();
      await Promise.all(replicas.map((replica) => replica.stop()));
      await admin?.end().catch(() => {});
      const stopped = performance.now();
      await cluster?.remove();
      progress(
        `postgres: replicas stopped in ${(stopped - stopping).toFixed(0)} ms, cluster removed in ${(performance.now() - stopped).toFixed(0)} ms`,
      );
    }
  },
};
