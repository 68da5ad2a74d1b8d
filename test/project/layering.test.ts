/**
 * The dependency rules of .dependency-cruiser.cjs (run on src/ by `npm run
 * deps`): each one fires on a small tree of files written here, and the real
 * src/ is parsed and breaks none. Without the first half, a cruiser that
 * parsed no .ts file at all would pass `npm run deps` in silence.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { cruise, type IConfiguration, type ICruiseResult } from "dependency-cruiser";
import { afterAll, describe, expect, test } from "vitest";
import { tempDir } from "../helpers/index.ts";

const config = createRequire(import.meta.url)("../../.dependency-cruiser.cjs") as IConfiguration;

async function violations(baseDir: string): Promise<{ result: ICruiseResult; found: string[] }> {
  const { output } = await cruise(["src"], {
    ...config.options,
    baseDir,
    validate: true,
    ruleSet: { forbidden: config.forbidden ?? [] },
  });
  const result = output as ICruiseResult;
  const found = (result.summary.violations ?? [])
    .map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`)
    .sort();
  return { result, found };
}

/**
 * One file per line; each forbidden import breaks one rule only, and the
 * allowed ones (same room, port to payments, cli to daemon.ts, ops to any
 * room) break none.
 */
const FIXTURE: Record<string, string> = {
  "package.json": JSON.stringify({ name: "fixture", devDependencies: { devonly: "1.0.0" } }),
  "node_modules/devonly/package.json": JSON.stringify({ name: "devonly", main: "index.js" }),
  "node_modules/devonly/index.js": "export const devonly = 1;\n",
  "test/helpers.ts": "export const helper = 1;\n",
  "src/internal/clock.ts": 'export { devonly } from "devonly";\n',
  "src/internal/logger.ts": 'export { helper } from "../../test/helpers.ts";\n',
  "src/addresses/a.ts": 'export { b } from "./b.ts";\nexport const a = 1;\n',
  "src/addresses/b.ts": 'export { a } from "./a.ts";\nexport const b = 1;\n',
  "src/addresses/index.ts": 'export { missing } from "./missing.ts";\n',
  "src/chain/watcher.ts": 'export { store } from "../store/sqlite/index.ts";\n',
  "src/store/sqlite/index.ts":
    'export { config } from "../../config/index.ts";\nexport const store = 1;\n',
  "src/config/index.ts": 'export { exitOnError } from "../cli/run.ts";\nexport const config = 1;\n',
  "src/payments/index.ts":
    'export { rpc } from "../rpc/index.ts";\nexport { storage } from "../store/storage.ts";\nexport const payments = 1;\n',
  "src/payments/sink.ts": 'export { store } from "../store/sqlite/index.ts";\n',
  "src/store/postgres/storage.ts": 'export { store } from "../sqlite/index.ts";\n',
  "src/store/postgres/copy.ts": 'export { store } from "../sqlite/index.ts";\n',
  "src/store/storage.ts": "export const storage = 1;\n",
  "src/rpc/index.ts":
    'export { method } from "./methods/start.ts";\nexport { now } from "../internal/clock.ts";\nexport const rpc = 1;\n',
  "src/rpc/methods/start.ts": "export const method = 1;\n",
  "src/public/index.ts": 'export { rpc } from "../rpc/index.ts";\n',
  "src/public/live.ts": 'export { ops } from "../ops/index.ts";\n',
  "src/ops/index.ts":
    'export { payments } from "../payments/index.ts";\nexport { method } from "../rpc/methods/start.ts";\nexport const ops = 1;\n',
  "src/postbacks/index.ts":
    'export { payments } from "../payments/index.ts";\nexport { daemon } from "../daemon.ts";\n',
  "src/daemon.ts": 'export { now } from "./internal/clock.ts";\nexport const daemon = 1;\n',
  "src/cli/run.ts": "export const exitOnError = 1;\n",
  "src/cli/serve.ts": 'export { daemon } from "../daemon.ts";\n',
};

const dir = tempDir();
afterAll(() => dir.cleanup());

describe("dependency rules", () => {
  test("each rule fires on the import it forbids, and only there", async () => {
    for (const [file, text] of Object.entries(FIXTURE)) {
      mkdirSync(dirname(join(dir.path, file)), { recursive: true });
      writeFileSync(join(dir.path, file), text);
    }
    const { found } = await violations(dir.path);
    expect(found).toEqual([
      "backends-stay-apart: src/store/postgres/storage.ts -> src/store/sqlite/index.ts",
      "chain-knows-no-payments: src/chain/watcher.ts -> src/store/sqlite/index.ts",
      "cli-is-the-top: src/config/index.ts -> src/cli/run.ts",
      "lower-rooms-stay-low: src/store/sqlite/index.ts -> src/config/index.ts",
      // A cycle is reported once, not once per edge.
      "no-circular: src/addresses/a.ts -> src/addresses/b.ts",
      "only-cli-starts-the-daemon: src/postbacks/index.ts -> src/daemon.ts",
      "ops-is-imported-by-the-wiring-only: src/public/live.ts -> src/ops/index.ts",
      "payments-below-the-ports: src/payments/index.ts -> src/rpc/index.ts",
      "payments-sees-the-storage-interface: src/payments/sink.ts -> src/store/sqlite/index.ts",
      "ports-stay-apart: src/public/index.ts -> src/rpc/index.ts",
      "src-not-to-dev-deps: src/internal/clock.ts -> node_modules/devonly/index.js",
      "src-not-to-test: src/internal/logger.ts -> test/helpers.ts",
      "src-resolvable: src/addresses/index.ts -> ./missing.ts",
    ]);
    // A rule added to the config without a line above is a rule nobody saw fire.
    expect(new Set(found.map((line) => line.split(":")[0]))).toEqual(
      new Set((config.forbidden ?? []).map((rule) => rule.name)),
    );
  });

  test("src/ is parsed, imports resolved, and breaks no rule", async () => {
    const { result, found } = await violations(process.cwd());
    expect(found).toEqual([]);
    const daemon = result.modules.find((m) => m.source === "src/daemon.ts");
    expect(daemon?.dependencies.map((d) => d.resolved)).toContain("src/store/sqlite/index.ts");
    expect(result.summary.totalCruised).toBeGreaterThan(50);
  });
});
