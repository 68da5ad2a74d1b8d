/**
 * The compiled daemon the tests run as child processes. `test/helpers/global-setup.ts`
 * writes it once per `vitest run` (`scripts/build.ts --out … --bench`: the
 * production build, plus the bench) into a folder of its own, named to the
 * test files by OXBTCPAY_TEST_BUILD, so it is never stale and two runs never
 * share one. A child process then starts in about a third of the CPU time
 * that compiling the sources through tsx costs, which adds up over the
 * suite's ~80 child processes. `bin/0xbtcpay` itself (tsx in a checkout,
 * dist/ in the package) is covered by test/cli/cli.test.ts and
 * test/project/package.test.ts.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Under node_modules/, so the compiled files resolve the project's packages. */
export const TEST_BUILDS = fileURLToPath(
  new URL("../../node_modules/.cache/0xbtcpay-test-builds/", import.meta.url),
);

/** A file of this run's test build; throws if there is none (a test run outside vitest). */
export function built(path: string): string {
  const dir = process.env.OXBTCPAY_TEST_BUILD;
  const file = dir ? join(dir, path) : undefined;
  if (!file || !existsSync(file)) {
    throw new Error(
      `no test build (${file ?? "OXBTCPAY_TEST_BUILD unset"}): run the tests with vitest, whose global setup builds it`,
    );
  }
  return file;
}
