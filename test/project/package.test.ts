/**
 * The npm package, as a user gets it: `npm pack` (which builds dist/ and
 * writes npm-shrinkwrap.json through prepack), installed into an empty
 * folder with the dependency tree its shrinkwrap pins, then the installed
 * `0xbtcpay` runs its commands, and `serve` takes a payment end to end from
 * the compiled JavaScript (migrations, worker threads and checkout assets
 * read from dist/).
 *
 * Nothing leaves the machine: --offline takes every package from npm's cache,
 * and needs nothing in it but what the repo's own `npm ci` put there (the
 * tarballs of the lock, no registry metadata): the test passes on a machine
 * whose cache is new. Install scripts are skipped, and the
 * one package that has one, better-sqlite3, gets the native addon that the
 * repo's `npm ci` compiled on this machine, for this Node, from the same
 * version (checked): compiling it again from source would take one to four
 * minutes of a 2-core machine for nothing this test is about. The from-source
 * compile of a fresh install is what `npm run docker:verify` does.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, ANVIL_MNEMONIC, DEV_XPUB } from "../../src/chain/anvil.ts";
import {
  LOOPBACK_TARGETS,
  startTestChain,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const run = promisify(execFile);
const dir = tempDir();
const app = join(dir.path, "app");
const installed = join(app, "node_modules", "0xbtcpay");
let installLog = "";
type Lock = {
  name: string;
  version: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, Record<string, unknown>>;
};
let shrinkwrap: Lock;

/** Runs the installed package's bin through npx, in the folder it was installed in. */
async function npx(args: string[]) {
  try {
    const { stdout, stderr } = await run("npx", ["--no-install", "0xbtcpay", ...args], {
      cwd: app,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const ADDON = join("build", "Release", "better_sqlite3.node");
const versionOf = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;

/** The lock the app is installed from: the package's own shrinkwrap, nested under it as npm places a shrinkwrapped package's tree. */
function appLock(tarballName: string, shrinkwrap: Lock): Lock {
  const { "": root, ...tree } = shrinkwrap.packages;
  const packages: Lock["packages"] = {
    "": { name: "app", dependencies: { "0xbtcpay": `file:../${tarballName}` } },
    "node_modules/0xbtcpay": {
      ...root,
      resolved: `file:../${tarballName}`,
    },
  };
  for (const [key, entry] of Object.entries(tree)) packages[`node_modules/0xbtcpay/${key}`] = entry;
  return { name: "app", version: "0.0.0", lockfileVersion: 3, requires: true, packages };
}

beforeAll(async () => {
  const packed = await run("npm", ["pack", "--pack-destination", dir.path], {
    cwd: process.cwd(),
    timeout: 180_000,
  });
  const tarballName = packed.stdout.trim().split("\n").at(-1) ?? "";
  const tarball = join(dir.path, tarballName);
  expect(existsSync(tarball)).toBe(true);
  // The shrinkwrap that the package carries (scripts/shrinkwrap.ts, at prepack).
  await run("tar", ["-xzf", tarball, "-C", dir.path, "package/npm-shrinkwrap.json"]);
  shrinkwrap = JSON.parse(
    readFileSync(join(dir.path, "package", "npm-shrinkwrap.json"), "utf8"),
  ) as Lock;
  mkdirSync(app);
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({
      name: "app",
      version: "0.0.0",
      private: true,
      dependencies: { "0xbtcpay": `file:../${tarballName}` },
    }),
  );
  writeFileSync(join(app, "package-lock.json"), JSON.stringify(appLock(tarballName, shrinkwrap)));
  // NOTE: `npm ci`, not `npm install <tarball>`: npm reads the shrinkwrap of a
  // package from the registry's metadata, not from a tarball on disk, so an
  // install of the tarball would resolve every version range through the
  // registry's package documents, which no `npm ci` puts in the cache. A
  // lock needs tarballs only, and these are the ones the repo's `npm ci`
  // fetched. --prefix: npm looks for the project upward from its folder.
  const install = await run(
    "npm",
    ["ci", "--prefix", app, "--offline", "--no-audit", "--no-fund", "--ignore-scripts"],
    { cwd: app, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 },
  ).catch((error: Error & { stderr?: string }) => {
    if (!error.stderr?.includes("ENOTCACHED")) throw error;
    throw new Error(
      `the npm cache (${process.env.npm_config_cache ?? "~/.npm"}) lacks a tarball of the lock: run the tests with the cache that the repo's \`npm ci\` filled\n${error.stderr}`,
    );
  });
  installLog = `${install.stdout}\n${install.stderr}`;
  const ours = join(process.cwd(), "node_modules", "better-sqlite3");
  const theirs = join(installed, "node_modules", "better-sqlite3");
  expect(versionOf(theirs)).toBe(versionOf(ours));
  mkdirSync(join(theirs, "build", "Release"), { recursive: true });
  copyFileSync(join(ours, ADDON), join(theirs, ADDON));
}, 420_000);

afterAll(() => dir.cleanup());

describe("the packed npm package", () => {
  test("installs the compiled daemon only: dist/, no sources, no TypeScript loader or compiler, no anvil", async () => {
    expect(readdirSync(installed).sort()).toEqual([
      "README.md",
      "bin",
      "config",
      "dist",
      "docs",
      "node_modules",
      "npm-shrinkwrap.json",
      "package.json",
    ]);
    expect(existsSync(join(installed, "dist", "src", "cli", "index.js"))).toBe(true);
    expect(existsSync(join(installed, "dist", "src", "addresses", "pool-worker.js"))).toBe(true);
    const store = join(installed, "dist", "src", "store");
    expect(existsSync(join(store, "sqlite", "checkpoint-worker.js"))).toBe(true);
    expect(existsSync(join(store, "sqlite", "migrations", "0001_init.sql"))).toBe(true);
    expect(existsSync(join(store, "postgres", "migrations", "0001_init.sql"))).toBe(true);
    for (const modules of [join(app, "node_modules"), join(installed, "node_modules")]) {
      for (const absent of ["tsx", "esbuild", "typescript", "@foundry-rs", "vitest"]) {
        expect(existsSync(join(modules, absent)), `${modules}: ${absent}`).toBe(false);
      }
    }
    // Installed from the cache without a script run: nothing compiled, nothing downloaded.
    expect(installLog).not.toMatch(/gyp|prebuild-install/);
  });

  test("carries its production dependency tree, pinned: the repo's lock less the development tools", () => {
    const repoLock = JSON.parse(readFileSync("package-lock.json", "utf8")) as Lock;
    const manifest = JSON.parse(readFileSync("package.json", "utf8")) as {
      dependencies: Record<string, string>;
    };
    const root = shrinkwrap.packages[""] as Record<string, unknown>;
    expect(root.dependencies).toEqual(manifest.dependencies);
    expect(root.devDependencies).toBeUndefined();
    const entries = Object.entries(shrinkwrap.packages).filter(([key]) => key !== "");
    for (const dep of Object.keys(manifest.dependencies)) {
      expect(shrinkwrap.packages[`node_modules/${dep}`], dep).toBeDefined();
    }
    for (const [key, entry] of entries) {
      // Each one exactly as the tests ran it: same version, same integrity.
      expect(entry, key).toEqual(
        expect.objectContaining({
          version: repoLock.packages[key]?.version,
          integrity: repoLock.packages[key]?.integrity,
        }),
      );
      expect(entry.dev, key).toBeUndefined();
    }
    const names = entries.map(([key]) => key);
    for (const dev of ["typescript", "vitest", "tsx", "@biomejs/biome", "@foundry-rs/anvil"]) {
      expect(names).not.toContain(`node_modules/${dev}`);
    }
    // Installed as a shrinkwrapped package: its tree lives under it, nothing beside it.
    expect(readdirSync(join(app, "node_modules")).filter((n) => !n.startsWith("."))).toEqual([
      "0xbtcpay",
    ]);
  });

  test("npx 0xbtcpay --help and serve --help", async () => {
    const help = await npx(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: 0xbtcpay \[options\] \[command\]/);
    for (const command of ["serve", "dev", "derive", "secret", "postbacks", "apikey"]) {
      expect(help.stdout).toContain(`\n  ${command} `);
    }
    const serve = await npx(["serve", "--help"]);
    expect(serve.code).toBe(0);
    expect(serve.stdout).toMatch(/^Usage: 0xbtcpay serve \[options\]/);
    expect(serve.stdout).toContain("OXBTCPAY_RPC_URL");
    expect(serve.stdout).toContain("OXBTCPAY_DATABASE_URL");
    // The section it names ships with the package.
    expect(serve.stdout).toContain("\nDocs: docs/operations.md#serve\n");
    expect(readFileSync(join(installed, "docs", "operations.md"), "utf8")).toContain(
      "\n### `serve`\n",
    );
    // doctor checks a config without starting anything.
    expect(help.stdout).toContain("\n  doctor ");
    const doctor = await npx(["doctor", "--help"]);
    expect(doctor.code).toBe(0);
    expect(doctor.stdout).toMatch(/^Usage: 0xbtcpay doctor/);
  });

  test("npx 0xbtcpay derive prints anvil's accounts from their xpub", async () => {
    const xpub = HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC)).derive(
      "m/44'/60'/0'/0",
    ).publicExtendedKey;
    const derived = await npx(["derive", "--xpub", xpub, "--count", "3"]);
    expect(derived).toEqual({
      code: 0,
      stdout: ANVIL_ACCOUNTS.slice(0, 3)
        .map((address, i) => `${i}\t${address}\n`)
        .join(""),
      stderr: "",
    });
  });

  test("npx 0xbtcpay dev says that the anvil binary is a development dependency", async () => {
    const dev = await npx(["dev"]);
    expect(dev.code).toBe(1);
    expect(dev.stdout).toBe("");
    expect(dev.stderr).toBe(
      "0xbtcpay: the local chain needs the anvil binary from the npm package @foundry-rs/anvil, a development dependency that production installs leave out: run `npm ci` in a checkout of 0xbtcpay, or `npm install @foundry-rs/anvil` beside this one\n",
    );
  });

  describe("serve, from the installed package", () => {
    let chain: TestChain;
    let child: ChildProcess | undefined;
    let stderr = "";
    beforeAll(async () => {
      chain = await startTestChain();
      await chain.mint(chain.token, ANVIL_ACCOUNTS[1], tokens(10));
    });
    afterAll(async () => {
      child?.kill("SIGKILL");
      await chain?.stop();
    });

    test("takes a payment to paid, serves the checkout page and its assets, warns of nothing, exits 0 on SIGTERM", async () => {
      const configPath = join(dir.path, "config.json");
      writeFileSync(
        configPath,
        JSON.stringify({
          chain: {
            rpcUrl: chain.rpcUrl,
            chainId: 31337,
            token: chain.token,
            confirmations: 2,
            pollIntervalMs: 50,
          },
          wallet: { xpub: DEV_XPUB },
          private: { host: "127.0.0.1", port: 0 },
          public: { host: "127.0.0.1", port: 0 },
          postbacks: {
            allowTargets: LOOPBACK_TARGETS,
            secret: `whsec_${randomBytes(32).toString("base64")}`,
          },
          database: { path: join(dir.path, "package.sqlite") },
          log: { level: "info" },
        }),
      );
      const started = spawn(
        process.execPath,
        [join(app, "node_modules", ".bin", "0xbtcpay"), "serve", "--config", configPath],
        { cwd: app, stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH ?? "" } },
      );
      child = started;
      started.stderr?.on("data", (chunk) => {
        stderr += chunk;
      });
      const exited = new Promise<number | null>((resolve) => started.once("exit", resolve));
      const logLines = () =>
        stderr
          .split("\n")
          .filter((line) => line.startsWith("{"))
          .map((line) => JSON.parse(line) as Record<string, unknown> & { level: number });
      const ready = await waitFor(() => logLines().find((l) => l.msg === "daemon started"), {
        timeoutMs: 30_000,
        what: `"daemon started" in ${stderr}`,
      });
      const privateUrl = ready.private_url as string;
      const publicUrl = ready.public_url as string;

      const reply = await fetch(privateUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "start_payment",
          params: { amount: "2.5" },
        }),
      });
      const { result } = (await reply.json()) as { result: { id: string; address: Hex } };
      expect(result.id).toMatch(/^[0-9a-f]{16}$/);

      const page = await fetch(`${publicUrl}/${result.id}`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const assets = [...html.matchAll(/\/assets\/checkout\.[0-9a-f]{12}\.(?:js|css)/g)].map(
        (m) => m[0],
      );
      expect(assets.length).toBe(2);
      for (const asset of assets) expect((await fetch(`${publicUrl}${asset}`)).status).toBe(200);

      const tx = await chain.transfer({
        token: chain.token,
        from: ANVIL_ACCOUNTS[1],
        to: result.address,
        value: 250_000_000n,
      });
      await chain.mine(2);
      const status = await waitFor(
        async () => {
          const body = (await (await fetch(`${publicUrl}/${result.id}/status.json`)).json()) as {
            status: string;
            tx_hash: string | null;
          };
          return body.status === "paid" ? body : undefined;
        },
        { what: "status paid" },
      );
      expect(status.tx_hash).toBe(tx);

      started.kill("SIGTERM");
      expect(await exited).toBe(0);
      // A worker that fails to load (a missing .js in dist/) is only a warning: none may appear.
      expect(logLines().filter((l) => l.level >= 40)).toEqual([]);
    });
  });
});
