/**
 * A reporter beside vitest's own: a run in which some test did not run fails,
 * and says which and why. vitest reports the tests of a file whose
 * `beforeAll` threw as skipped, and a `.skip`, `.todo` or `.only` left in a
 * file skips others: either way a green-looking count would hide tests that
 * proved nothing. A run filtered by test name (`-t`) skips on purpose and is
 * not checked.
 */
import type { Reporter, TestModule, Vitest } from "vitest/node";

export default class EveryTestRan implements Reporter {
  #vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.#vitest = vitest;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    if (this.#vitest?.config.testNamePattern) return;
    const notRun: string[] = [];
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const { state } = test.result();
        if (state === "passed" || state === "failed") continue;
        const why =
          test.options.mode === "run"
            ? "did not run (a hook of its suite failed, or the file stopped)"
            : `marked ${test.options.mode}`;
        notRun.push(`  ${module.relativeModuleId} > ${test.fullName}: ${why}`);
      }
    }
    if (notRun.length === 0) return;
    process.stderr.write(
      `\n${notRun.length} test(s) did not run, so this run fails (test/helpers/every-test-ran.ts):\n${notRun.join("\n")}\n\n`,
    );
    process.exitCode = 1;
  }
}
