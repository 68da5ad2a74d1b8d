import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // A test that did not run (skipped after a failed beforeAll, or marked
    // skip, todo or left out by an only) fails the run.
    reporters: ["default", "./test/helpers/every-test-ran.ts"],
    pool: "forks",
    // NOTE: vitest's default (cores - 1) runs one file at a time on 2 cores.
    // Most files wait on anvil, sockets and child processes more than they
    // compute, so two at a time on 2 cores halves the suite's wall time.
    maxWorkers: Math.max(2, availableParallelism()),
    // NOTE: a worker process runs file after file without re-importing the
    // modules they share (a fresh process per file spent ~80 s of a 2-core
    // run importing viem and our sources again). Nothing in src/ keeps
    // process-wide state (each daemon has its own registry, caches and
    // timers); a test file must also leave none behind: close what it opens
    // in afterAll, and restore whatever global it changes.
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
