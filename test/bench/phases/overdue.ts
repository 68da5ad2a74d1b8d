/**
 * A daemon that comes back to a backlog: 100,000 open payments whose
 * deadlines passed while it was down (a sale, a day's outage). The deadline
 * sweep works them off in batches while status.json is under steady load
 * (50 connections, random ids among the overdue ones):
 *
 * - overdue_sweep_status_p99_ms: status.json's p99 (the worst of 1-second
 *   rounds from the daemon's start, the first one left out) while the sweep
 *   runs. The baseline: the same daemon started again on the same
 *   database, now with nothing due, under the same load for as many rounds
 *   from its start, its first left out too (both start cold; the first
 *   second of either is the start's, and both are printed). Target ≤ 3×.
 * - overdue_sweep_rss_growth_mb: what the backlog adds to the process's
 *   high-water mark (VmHWM, over its resident memory at start) beyond what
 *   the same load costs the daemon without it: target ≤ 50 MB (one batch of
 *   rows at a time, not the backlog).
 * - overdue_sweep_per_s: payments expired per second under that load, for
 *   the record.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { memoryOf, spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { describeLoad, type LoadResult, runLoad } from "../load.ts";
import { figure, progress } from "../report.ts";
import { seedOverdue } from "../seed.ts";

const CONNECTIONS = 50;

export const overduePhase: Phase = {
  name: "overdue",
  figures: [
    { name: "overdue_sweep_status_p99_ms", unit: "ms" },
    { name: "overdue_sweep_rss_growth_mb", unit: "MB" },
    { name: "overdue_sweep_per_s", unit: "payments/s" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const total = smoke ? 20_000 : 100_000;
    const roundS = smoke ? 0.2 : 1;
    const path = join(workDir, "overdue.sqlite");
    progress(`overdue: seeding ${total} overdue open payments`);
    const ids = seedOverdue({ path, total, postbackUrl: "http://127.0.0.1:9/payment_complete" });
    const observer = new Database(path, { readonly: true });
    const expired = observer
      .prepare("SELECT count(*) FROM payments WHERE status = 'expired'")
      .pluck();
    const load = (url: string, pid: number, durationS: number) =>
      runLoad({
        url,
        connections: CONNECTIONS,
        durationS,
        path: () => `/${ids[Math.floor(Math.random() * ids.length)]}/status.json`,
        serverPid: pid,
      });
    const checked = (result: LoadResult) => {
      if (result.non2xx > 0 || result.errors > 0 || result.responses === 0)
        throw new Error(`overdue load: ${describeLoad(result)}`);
      return result;
    };
    const worst = (rounds: LoadResult[]) => Math.max(0, ...rounds.map((r) => r.p99Ms));
    try {
      // With the backlog: rounds from the start while the sweep runs; a round
      // that ended after it did is not one of them.
      const backlog = await spawnDaemon({
        config: daemonConfig(chain, path),
        profile: context.profile("overdue-daemon"),
      });
      const during: LoadResult[] = [];
      let sweptS: number;
      let withBacklog: { rssMb: number; hwmMb: number };
      let atStart: { rssMb: number; hwmMb: number };
      try {
        atStart = memoryOf(backlog.pid);
        const startedAt = performance.now();
        for (;;) {
          const round = checked(await load(backlog.publicUrl, backlog.pid, roundS));
          const done = (expired.get() as number) >= total;
          progress(`overdue: ${expired.get()} of ${total} expired; ${describeLoad(round)}`);
          if (done) break;
          during.push(round);
          if (performance.now() - startedAt > 300_000) {
            throw new Error("the sweep took over 5 minutes");
          }
        }
        sweptS = (performance.now() - startedAt) / 1000;
        withBacklog = memoryOf(backlog.pid);
      } finally {
        await backlog.stop();
      }
      // NOTE: a smoke run's sweep may be over within its first round.
      if (during.length === 0 && !smoke) {
        throw new Error("the sweep ended before a whole round of load");
      }
      // The same daemon on the same database, started again, now with
      // nothing due: as many rounds from its start, the same load.
      const calm = await spawnDaemon({ config: daemonConfig(chain, path) });
      const baseline: LoadResult[] = [];
      let withoutBacklog: { rssMb: number; hwmMb: number };
      let calmStart: { rssMb: number; hwmMb: number };
      try {
        calmStart = memoryOf(calm.pid);
        for (let i = 0; i < Math.max(1, during.length); i++) {
          baseline.push(checked(await load(calm.publicUrl, calm.pid, roundS)));
        }
        withoutBacklog = memoryOf(calm.pid);
      } finally {
        await calm.stop();
      }
      // NOTE: the first second after a start is the start's, with or
      // without a backlog (modules, caches and compiled code still coming
      // up: its p99 moved from 16 to 72 ms between runs with nothing due),
      // so the figure compares the rounds after it; both first rounds are
      // in the progress line.
      const settled = (rounds: LoadResult[]) => (rounds.length > 1 ? rounds.slice(1) : rounds);
      const p99During = worst(settled(during));
      const p99Calm = worst(settled(baseline));
      progress(
        `overdue: first second's p99 ${worst(during.slice(0, 1)).toFixed(2)} ms with the backlog, ${worst(baseline.slice(0, 1)).toFixed(2)} ms without`,
      );
      // What the backlog added to the process's peak, beyond what the load costs anyway.
      const growth = withBacklog.hwmMb - atStart.rssMb - (withoutBacklog.hwmMb - calmStart.rssMb);
      progress(
        `overdue: swept ${total} in ${sweptS.toFixed(1)} s; status.json p99 ${p99During.toFixed(2)} ms during (${during.length} rounds), ${p99Calm.toFixed(2)} ms from a start with nothing due; peak RSS ${withBacklog.hwmMb.toFixed(0)} MB from ${atStart.rssMb.toFixed(0)} MB with the backlog, ${withoutBacklog.hwmMb.toFixed(0)} MB from ${calmStart.rssMb.toFixed(0)} MB without`,
      );
      emit(
        figure("overdue_sweep_status_p99_ms", p99During, "ms", {
          baseline: p99Calm,
          target: { on: "ratio", op: "<=", limit: 3 },
        }),
      );
      emit(
        figure("overdue_sweep_rss_growth_mb", growth, "MB", {
          target: { on: "value", op: "<=", limit: 50 },
        }),
      );
      emit(figure("overdue_sweep_per_s", total / sweptS, "payments/s"));
    } finally {
      observer.close();
    }
  },
};
