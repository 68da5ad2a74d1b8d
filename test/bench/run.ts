/**
 * `npm run bench`: measures the daemon against baselines measured in the same
 * run, and prints one JSON line per figure, then a summary line.
 *
 *   npm run bench                       full run (6 to 7 minutes on 2 cores)
 *   npm run bench -- --smoke            every figure, very briefly (seconds): not a measurement
 *   npm run bench -- --out FILE         also write the lines to FILE
 *   npm run bench -- --only status,rss  run some phases only
 *   npm run bench -- --profile DIR      --cpu-prof the daemon (and baseline) children into DIR
 *
 * Everything runs on 127.0.0.1: anvil, the daemon and the baselines in child
 * processes, autocannon in this process. See docs/benchmarks.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startTestChain, tempDir, tokens } from "../helpers/index.ts";
import type { BenchContext, Phase } from "./context.ts";
import { backfillPhase } from "./phases/backfill.ts";
import { checkoutPhase } from "./phases/checkout.ts";
import { derivePhase } from "./phases/derive.ts";
import { detectPhase, PAYER } from "./phases/detect.ts";
import { detectBrowserPhase } from "./phases/detect-browser.ts";
import { matchPhase } from "./phases/match.ts";
import { opsScrapePhase } from "./phases/ops-scrape.ts";
import { overduePhase } from "./phases/overdue.ts";
import { postgresPhase } from "./phases/postgres.ts";
import { publicFloodPhase } from "./phases/public-flood.ts";
import { rssPhase } from "./phases/rss.ts";
import { ssePhase } from "./phases/sse.ts";
import { startPaymentPhase } from "./phases/start-payment.ts";
import { statusPhase } from "./phases/status.ts";
import { type Figure, failedFigure, progress } from "./report.ts";

const PHASES: Phase[] = [
  derivePhase,
  matchPhase,
  statusPhase,
  startPaymentPhase,
  publicFloodPhase,
  detectPhase,
  backfillPhase,
  rssPhase,
  overduePhase,
  checkoutPhase,
  detectBrowserPhase,
  ssePhase,
  opsScrapePhase,
  postgresPhase,
];

const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    out: { type: "string" },
    only: { type: "string" },
    profile: { type: "string" },
  },
});

const only = args.only?.split(",").map((name) => name.trim());
const unknown = only?.filter((name) => !PHASES.some((phase) => phase.name === name)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(
    `unknown phase(s) ${unknown.join(", ")}; phases: ${PHASES.map((p) => p.name).join(", ")}\n`,
  );
  process.exit(2);
}
const phases = only ? PHASES.filter((phase) => only.includes(phase.name)) : PHASES;
const profileDir = args.profile ? resolve(args.profile) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });

const lines: string[] = [];
function print(line: object): void {
  const text = JSON.stringify(line);
  lines.push(text);
  process.stdout.write(`${text}\n`);
}

const began = performance.now();
const work = tempDir();
const figures: Figure[] = [];
const errors: Array<{ phase: string; error: string }> = [];
progress(
  `${args.smoke ? "smoke run (figures are not measurements)" : "full run"}, ${availableParallelism()} cores, node ${process.version}, work dir ${work.path}`,
);
const chain = await startTestChain();
try {
  await chain.mint(chain.token, PAYER, tokens(1_000_000));
  for (const phase of phases) {
    const emitted = new Set<string>();
    const context: BenchContext = {
      smoke: args.smoke,
      workDir: work.path,
      chain,
      profile: (name) => (profileDir ? { dir: profileDir, name } : undefined),
      emit(result) {
        emitted.add(result.name);
        figures.push(result);
        print(result);
      },
    };
    progress(`phase ${phase.name}`);
    try {
      await phase.run(context);
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      progress(`phase ${phase.name} FAILED: ${message}`);
      errors.push({ phase: phase.name, error: String(error) });
      for (const { name, unit } of phase.figures) {
        if (!emitted.has(name)) context.emit(failedFigure(name, unit));
      }
    }
  }
} finally {
  await chain.stop();
  work.cleanup();
}

const failed = figures.filter((f) => !f.ok).map((f) => f.name);
print({
  summary: true,
  smoke: args.smoke,
  figures: figures.length,
  ok: figures.length - failed.length,
  failed,
  errors,
  nproc: availableParallelism(),
  node: process.version,
  duration_s: Math.round((performance.now() - began) / 100) / 10,
});
if (args.out) writeFileSync(args.out, `${lines.join("\n")}\n`);
process.exit(errors.length > 0 ? 1 : 0);
