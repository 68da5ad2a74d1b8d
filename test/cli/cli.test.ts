import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { afterAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, ANVIL_MNEMONIC } from "../../src/chain/anvil.ts";
import { cli } from "../helpers/cli.ts";
import { tempDir } from "../helpers/index.ts";

const account0 = HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC)).derive("m/44'/60'/0'/0");
const dir = tempDir();
afterAll(() => dir.cleanup());

describe("0xbtcpay CLI", () => {
  test("derive prints index and address", async () => {
    const { code, stdout } = await cli([
      "derive",
      "--xpub",
      account0.publicExtendedKey,
      "--count",
      "3",
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe(
      ANVIL_ACCOUNTS.slice(0, 3)
        .map((a, i) => `${i}\t${a}\n`)
        .join(""),
    );
  });

  test("derive takes the xpub from OXBTCPAY_XPUB and a start index", async () => {
    const { stdout } = await cli(["derive", "--start", "8", "-n", "2"], {
      OXBTCPAY_XPUB: account0.publicExtendedKey,
    });
    expect(stdout).toBe(`8\t${ANVIL_ACCOUNTS[8]}\n9\t${ANVIL_ACCOUNTS[9]}\n`);
  });

  test("derive refuses an xprv and bad numbers", async () => {
    const xprv = await cli(["derive", "--xpub", account0.privateExtendedKey]);
    expect(xprv.code).toBe(1);
    expect(xprv.stderr).toMatch(/extended PRIVATE key/);
    expect(xprv.stdout).toBe("");
    const count = await cli(["derive", "--xpub", account0.publicExtendedKey, "--count", "-3"]);
    expect(count.code).toBe(1);
    expect(count.stderr).toMatch(/expected a whole number/);
  });

  test.each([["serve"], ["dev"], ["derive"], ["dev", "pay"]])(
    "%s --help describes the command and ends by naming its section of docs/operations.md",
    async (...command) => {
      const { code, stdout } = await cli([...command, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toMatch(/^Usage: 0xbtcpay /);
      expect(stdout.endsWith(`\nDocs: docs/operations.md#${command.join("-")}\n`)).toBe(true);
    },
  );

  test("bin/0xbtcpay in a checkout runs the TypeScript sources (tsx), as `npm start` does", async () => {
    // The rest of the suite runs the compiled test build; this is the shim's
    // other branch (the package's, dist/, is in test/project/package.test.ts).
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["bin/0xbtcpay", "derive", "--xpub", account0.publicExtendedKey, "--count", "1"],
      { env: { PATH: process.env.PATH ?? "" }, timeout: 120_000 },
    );
    expect({ stdout, stderr }).toEqual({ stdout: `0\t${ANVIL_ACCOUNTS[0]}\n`, stderr: "" });
  });

  test("serve with an invalid config names each key and exits 1 before binding a port", async () => {
    const path = join(dir.path, "bad.json");
    writeFileSync(
      path,
      JSON.stringify({
        chain: { rpcUrl: "http://127.0.0.1:1", chainId: "one" },
        wallet: { xpub: "nope" },
        private: { port: 8888, allow: ["10.0.0.300"] },
        database: { path: join(dir.path, "db.sqlite") },
      }),
    );
    const { code, stderr } = await cli(["serve", "--config", path]);
    expect(code).toBe(1);
    expect(stderr).toContain("invalid configuration");
    expect(stderr).toContain("chain.chainId: Invalid input: expected number, received string");
    expect(stderr).toContain("wallet.xpub: not a valid BIP32 extended public key");
    expect(stderr).toContain('private.allow.0: "10.0.0.300" is not an IP address or CIDR range');
    expect(stderr).not.toMatch(/EADDRINUSE|daemon started/);
  });

  test("serve without a config says how to give one", async () => {
    const { code, stderr } = await cli(["serve"]);
    expect(code).toBe(1);
    expect(stderr).toContain("pass --config FILE or set OXBTCPAY_CONFIG");
  });
});
