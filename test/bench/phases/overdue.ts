/**
 * A daemon that comes back to a backlog: 100,000 open payments whose
 * deadlines passed while it was down (a sale, a day's outage). The deadline
 * sweep works them off in batches while status.json is under steady load
 * (50 connections, random ids among the overdue ones):
 *
 * - overdue_sweep_status_p99_ms: status.json's p99 (the worst of 1-second
 *   rounds) while the sweep runs, against the same daemon's once it is done
 *   (the baseline): target ≤ 3×.
 * - overdue_sweep_rss_growth_mb: the process's high-water mark (VmHWM) at
 *   the end of the sweep less its resident memory when it started:
 *   target ≤ 50 MB (one batch of rows at a time, not the backlog).
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
    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path),
      profile: context.profile("overdue-daemon"),
    });
    try {
      const atStart = memoryOf(daemon.pid);
      const startedAt = performance.now();
      const load = (durationS: number) =>
        runLoad({
          url: daemon.publicUrl,
          connections: CONNECTIONS,
          durationS,
          path: () => `/${ids[Math.floor(Math.random() * ids.length)]}/status.json`,
          serverPid: daemon.pid,
        });
      const checked = (result: LoadResult) => {
        if (result.non2xx > 0 || result.errors > 0 || result.responses === 0)
          throw new Error(`overdue load: ${describeLoad(result)}`);
        return result;
      };
      // Rounds while the sweep runs; a round that ended after it did is not one of them.
      const during: LoadResult[] = [];
      let done = false;
      while (!done) {
        const round = checked(await load(roundS));
        done = (expired.get() as number) >= total;
        if (!done) during.push(round);
        progress(`overdue: ${expired.get()} of ${total} expired; ${describeLoad(round)}`);
        if (performance.now() - startedAt > 300_000)
          throw new Error("the sweep took over 5 minutes");
      }
      const sweptS = (performance.now() - startedAt) / 1000;
      const atEnd = memoryOf(daemon.pid);
      // NOTE: a smoke run's sweep may be over within its first round.
      if (during.length === 0 && !smoke) {
        throw new Error("the sweep ended before a whole round of load");
      }
      const after: LoadResult[] = [];
      for (let i = 0; i < Math.max(3, Math.min(during.length, 10)); i++)
        after.push(checked(await load(1)));
      const worst = (rounds: LoadResult[]) => Math.max(0, ...rounds.map((r) => r.p99Ms));
      const p99During = worst(during);
      const p99After = worst(after);
      progress(
        `overdue: swept ${total} in ${sweptS.toFixed(1)} s; status.json p99 ${p99During.toFixed(2)} ms during (${during.length} rounds), ${p99After.toFixed(2)} ms after; RSS ${atStart.rssMb.toFixed(0)} MB at start, peak ${atEnd.hwmMb.toFixed(0)} MB`,
      );
      emit(
        figure("overdue_sweep_status_p99_ms", p99During, "ms", {
          baseline: p99After,
          target: { on: "ratio", op: "<=", limit: 3 },
        }),
      );
      emit(
        figure("overdue_sweep_rss_growth_mb", atEnd.hwmMb - atStart.rssMb, "MB", {
          target: { on: "value", op: "<=", limit: 50 },
        }),
      );
      emit(figure("overdue_sweep_per_s", total / sweptS, "payments/s"));
    } finally {
      observer.close();
      await daemon.stop();
    }
  },
};
