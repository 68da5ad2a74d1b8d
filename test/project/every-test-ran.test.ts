/**
 * The suite's own rule (test/helpers/every-test-ran.ts): a run in which a
 * test did not run fails. Real vitest runs, in child processes, on small
 * test files written for the purpose: a file whose beforeAll throws, a
 * test.skip, and a file where everything runs.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, test } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../", import.meta.url));
const reporter = join(root, "test", "helpers", "every-test-ran.ts");
// NOTE: under the repo's node_modules/, so the files written here resolve vitest.
const cache = join(root, "node_modules", ".cache");
mkdirSync(cache, { recursive: true });
const dir = mkdtempSync(join(cache, "every-test-ran-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, "vitest.config.mjs"),
  `export default { test: { include: ["*.test.ts"], reporters: ["default", ${JSON.stringify(reporter)}] } };\n`,
);
const files = {
  "hook.test.ts":
    'import { beforeAll, expect, test } from "vitest";\nbeforeAll(() => { throw new Error("no chain"); });\ntest("needs the chain", () => expect(1).toBe(1));\n',
  "skip.test.ts":
    'import { expect, test } from "vitest";\ntest.skip("left out", () => expect(1).toBe(1));\ntest("runs", () => expect(1).toBe(1));\n',
  "fine.test.ts":
    'import { expect, test } from "vitest";\ntest("runs", () => expect(1).toBe(1));\n',
};
for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);

async function vitest(args: string[]) {
  try {
    const { stderr } = await run(
      process.execPath,
      [join(root, "node_modules", "vitest", "vitest.mjs"), "run", "--root", dir, ...args],
      { cwd: dir, timeout: 60_000, env: { ...process.env, CI: "true" } },
    );
    return { code: 0, stderr };
  } catch (error) {
    const e = error as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe("a run in which a test did not run", () => {
  test("fails, naming each test and why: skipped after a failed beforeAll, marked skip", async () => {
    const { code, stderr } = await vitest(["hook.test.ts", "skip.test.ts"]);
    expect(code).toBe(1);
    expect(stderr).toContain("2 test(s) did not run, so this run fails");
    expect(stderr).toContain(
      "hook.test.ts > needs the chain: did not run (a hook of its suite failed, or the file stopped)",
    );
    expect(stderr).toContain("skip.test.ts > left out: marked skip");
  });

  test("a skip alone fails the run, though every test that ran passed", async () => {
    const { code, stderr } = await vitest(["skip.test.ts"]);
    expect(code).toBe(1);
    expect(stderr).toContain("1 test(s) did not run");
  });

  test("a run where every test ran passes, and one filtered by name is not checked", async () => {
    const fine = await vitest(["fine.test.ts"]);
    expect(fine).toEqual({ code: 0, stderr: expect.not.stringContaining("did not run") });
    const filtered = await vitest(["skip.test.ts", "-t", "runs"]);
    expect(filtered.code).toBe(0);
  });
});
