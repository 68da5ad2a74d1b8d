/**
 * rss_mb_1m: resident memory (VmRSS) of the daemon's process after one
 * minute serving status.json under steady load (50 connections, random ids
 * among all payments), with 1,000,000 payments in its database: 100,000
 * pending, 450,000 paid (each with its transfer) and 450,000 expired,
 * written straight into the database, each as the lifecycle decides it
 * (test/bench/seed.ts; no address derived). rss_peak_mb is the process's
 * high-water mark (VmHWM) over the same run. startup_ms_1m: from the spawn
 * of the daemon's process to its first 200 on status.json.
 */
import { join } from "node:path";
import { memoryOf, spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { describeLoad, runLoad } from "../load.ts";
import { figure, progress } from "../report.ts";
import { seedPayments } from "../seed.ts";

export const rssPhase: Phase = {
  name: "rss",
  figures: [
    { name: "startup_ms_1m", unit: "ms" },
    { name: "rss_mb_1m", unit: "MB" },
    { name: "rss_peak_mb", unit: "MB" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const total = smoke ? 10_000 : 1_000_000;
    const durationS = smoke ? 1 : 60;
    const path = join(workDir, "rss.sqlite");
    progress(`rss: seeding ${total} payments`);
    const ids = seedPayments({
      path,
      counts: { pending: total / 10, paid: (total * 9) / 20, expired: (total * 9) / 20 },
    }).map((p) => p.id);
    progress("rss: seeded");
    const spawnedAt = performance.now();
    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path),
    });
    try {
      // Start-up as an operator sees it: from the spawn to the first answer.
      for (;;) {
        const answer = await fetch(`${daemon.publicUrl}/${ids[0]}/status.json`);
        await answer.arrayBuffer();
        if (answer.status === 200) break;
        if (performance.now() - spawnedAt > 120_000)
          throw new Error(`status.json answers ${answer.status}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const startupMs = performance.now() - spawnedAt;
      progress(`rss: the first 200 on status.json ${startupMs.toFixed(0)} ms after the spawn`);
      emit(
        figure("startup_ms_1m", startupMs, "ms", {
          target: { on: "value", op: "<=", limit: 5_000 },
        }),
      );
      const atStart = memoryOf(daemon.pid);
      progress(
        `rss: daemon started at ${atStart.rssMb.toFixed(0)} MB; ${durationS} s of status load`,
      );
      const sampler = setInterval(
        () => {
          const { rssMb, hwmMb } = memoryOf(daemon.pid);
          progress(`rss: ${rssMb.toFixed(0)} MB (peak ${hwmMb.toFixed(0)} MB)`);
        },
        smoke ? 1_000 : 15_000,
      );
      let result: Awaited<ReturnType<typeof runLoad>>;
      try {
        result = await runLoad({
          url: daemon.publicUrl,
          connections: 50,
          durationS,
          path: () => `/${ids[Math.floor(Math.random() * ids.length)]}/status.json`,
          serverPid: daemon.pid,
        });
      } finally {
        clearInterval(sampler);
      }
      const atEnd = memoryOf(daemon.pid);
      if (result.non2xx > 0 || result.errors > 0)
        throw new Error(`rss load: ${describeLoad(result)}`);
      progress(`rss load: ${describeLoad(result)}`);
      progress(
        `rss: ${atEnd.rssMb.toFixed(0)} MB after ${durationS} s (peak ${atEnd.hwmMb.toFixed(0)} MB)`,
      );
      emit(
        figure("rss_mb_1m", atEnd.rssMb, "MB", {
          target: { on: "value", op: "<=", limit: 200 },
        }),
      );
      // The high-water mark over the whole run (VmHWM): no target, for the record.
      emit(figure("rss_peak_mb", atEnd.hwmMb, "MB"));
    } finally {
      await daemon.stop();
    }
  },
};
