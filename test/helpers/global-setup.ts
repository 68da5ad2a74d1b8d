/**
 * Once per `vitest run`, before any test file: compiles the daemon and the
 * bench into a test build (test/helpers/build.ts) that the tests run as
 * child processes, and removes it at the end.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { TEST_BUILDS } from "./build.ts";

export default function setup(): () => void {
  mkdirSync(TEST_BUILDS, { recursive: true });
  const dir = mkdtempSync(join(TEST_BUILDS, "run-"));
  try {
    execFileSync(
      process.execPath,
      ["--import", "tsx", "scripts/build.ts", "--out", dir, "--bench"],
      { stdio: "pipe", timeout: 300_000 },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const e = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`the test build failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
  // Test files run in worker processes forked after this: they inherit it.
  process.env.OXBTCPAY_TEST_BUILD = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
