import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    pool: "forks",
    // NOTE: vitest's default (cores - 1) runs one file at a time on 2 cores.
    // Most files wait on anvil, sockets and child processes more than they
    // compute, so two at a time on 2 cores halves the suite's wall time.
    maxWorkers: Math.max(2, availableParallelism()),
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
