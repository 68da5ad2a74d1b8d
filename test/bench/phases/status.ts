/**
 * status_rps vs baseline_http_rps: GET /<id>/status.json for random ids among
 * 10,000 existing payments, 50 connections, against the daemon in a child
 * process; the baseline is a bare node:http server in a child process
 * answering with the same headers and body bytes. Warm-up, then rounds
 * alternating baseline and daemon (so a noisy neighbour hits both), medians.
 */
import { join } from "node:path";
import { spawnBaseline, spawnDaemon } from "../children.ts";
import { type BenchContext, daemonConfig, type Phase } from "../context.ts";
import { describeLoad, type LoadResult, runLoad } from "../load.ts";
import { figure, median, progress } from "../report.ts";
import { seedPayments } from "../seed.ts";

const CONNECTIONS = 50;
/** Headers node:http writes itself; the baseline copies every other one. */
const TRANSPORT_HEADERS = new Set([
  "date",
  "connection",
  "keep-alive",
  "content-length",
  "transfer-encoding",
]);

/** The headers of a real response that the bare node:http baseline copies (all but the transport's). */
export function baselineHeaders(response: Response): Record<string, string> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (!TRANSPORT_HEADERS.has(name)) headers[name] = value;
  });
  return headers;
}

function checked(what: string, result: LoadResult): LoadResult {
  if (result.non2xx > 0 || result.errors > 0 || result.responses === 0) {
    throw new Error(`${what}: ${describeLoad(result)}`);
  }
  return result;
}

export const statusPhase: Phase = {
  name: "status",
  figures: [
    { name: "baseline_http_rps", unit: "req/s" },
    { name: "status_rps", unit: "req/s" },
  ],
  async run(context: BenchContext) {
    const { smoke, workDir, chain, emit } = context;
    const count = smoke ? 1_000 : 10_000;
    const roundS = smoke ? 0.5 : 5;
    const warmupS = smoke ? 0 : 3;
    const rounds = smoke ? 1 : 3;
    const path = join(workDir, "status.sqlite");
    progress(`status: seeding ${count} payments`);
    const ids = seedPayments({ path, counts: { pending: count } }).map((p) => p.id);
    const daemon = await spawnDaemon({
      config: daemonConfig(chain, path),
      profile: context.profile("status-daemon"),
    });
    try {
      const sample = await fetch(`${daemon.publicUrl}/${ids[0]}/status.json`);
      const body = await sample.text();
      if (sample.status !== 200) throw new Error(`status.json answered ${sample.status}: ${body}`);
      const headers = baselineHeaders(sample);
      const baseline = await spawnBaseline(
        { mode: "status", headers, body },
        context.profile("status-baseline"),
      );
      try {
        const path = () => `/${ids[Math.floor(Math.random() * ids.length)]}/status.json`;
        const load = (url: string, pid: number, durationS: number) =>
          runLoad({ url, connections: CONNECTIONS, durationS, path, serverPid: pid });
        progress(`status: warm-up (${warmupS} s each), ${body.length} B body`);
        if (warmupS > 0) {
          await load(baseline.url, baseline.pid, warmupS);
          await load(daemon.publicUrl, daemon.pid, warmupS);
        }
        const baselineRps: number[] = [];
        const daemonRps: number[] = [];
        for (let round = 1; round <= rounds; round++) {
          const b = checked("baseline", await load(baseline.url, baseline.pid, roundS));
          progress(`status round ${round}/${rounds} baseline: ${describeLoad(b)}`);
          const d = checked("daemon", await load(daemon.publicUrl, daemon.pid, roundS));
          progress(`status round ${round}/${rounds} daemon:   ${describeLoad(d)}`);
          baselineRps.push(b.rps);
          daemonRps.push(d.rps);
        }
        const base = median(baselineRps);
        emit(figure("baseline_http_rps", base, "req/s"));
        emit(
          figure("status_rps", median(daemonRps), "req/s", {
            baseline: base,
            target: { on: "ratio", op: ">=", limit: 0.8 },
          }),
        );
      } finally {
        await baseline.stop();
      }
    } finally {
      await daemon.stop();
    }
  },
};
