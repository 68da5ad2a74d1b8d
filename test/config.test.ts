import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { DEV_XPUB } from "../src/chain/anvil.ts";
import { loadConfig, parseConfig, parseDuration } from "../src/config/index.ts";
import { ConfigError } from "../src/internal/errors.ts";
import { tempDir } from "./helpers/index.ts";

const minimal = {
  chain: { rpcUrl: "https://rpc.example/v1", chainId: 1 },
  wallet: { xpub: DEV_XPUB },
  database: { path: "/tmp/x.sqlite" },
};

function issuesOf(raw: unknown, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(raw, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

describe("config", () => {
  test("a minimal config gets the documented defaults", () => {
    const config = parseConfig(minimal);
    expect(config).toEqual({
      chain: {
        rpcUrl: "https://rpc.example/v1",
        chainId: 1,
        token: "0xb6ed7644c69416d67b522e20bc294a9a9b405b31",
        decimals: 8,
        confirmations: 3,
        pollIntervalMs: 2000,
        maxBlockRange: 2000,
        finalityDepth: 64,
      },
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 8888, allow: [], trustProxy: [] },
      public: { host: "0.0.0.0", port: 8080 },
      payments: { expiresAfter: 86_400, monitorFor: 604_800, maxAmount: "20999984" },
      postbacks: { timeoutMs: 15_000 },
      database: { path: "/tmp/x.sqlite" },
      log: { level: "info" },
    });
  });

  test("every error names the key and the problem", () => {
    expect(
      issuesOf({
        chain: { rpcUrl: "not a url", chainId: -1, token: "0x12", confirmations: 0 },
        wallet: {},
        private: { port: 70000 },
        payments: { expiresAfter: "soon" },
        database: { path: "x" },
        extra: true,
      }),
    ).toEqual([
      "chain.rpcUrl: expected an http(s) URL",
      "chain.chainId: Too small: expected number to be >0",
      "chain.token: expected a 0x-prefixed 20-byte address",
      "chain.confirmations: Too small: expected number to be >=1",
      "wallet.xpub: is required",
      "private.port: Too big: expected number to be <=65535",
      'payments.expiresAfter: expected a duration such as "15m", "24h", "7d" or a whole number of seconds',
      '(root): Unrecognized key: "extra"',
    ]);
  });

  test("an xprv in wallet.xpub is refused with the reason", () => {
    const xprv =
      "xprvA1RBzNvgwwwvNvUXoakDR7ZAYzs4HGgWCpyeZDBqDwcHAW9zHbAExhv8ReRd5bENcYypmCx9fPhb8gPnyF5pVXb4uhy3tNd2GpP1ZqHrC8k";
    const [issue] = issuesOf({ ...minimal, wallet: { xpub: xprv } });
    expect(issue).toMatch(/^wallet\.xpub: this is an extended PRIVATE key \(xprv\)/);
  });

  test("secrets may come from the environment instead of the file", () => {
    const config = parseConfig(
      { chain: { chainId: 1 }, database: { path: "x" } },
      {
        OXBTCPAY_XPUB: DEV_XPUB,
        OXBTCPAY_RPC_URL: "https://env.example/rpc",
        OXBTCPAY_POSTBACK_SECRET: "whsec_abc",
      },
    );
    expect(config.wallet.xpub).toBe(DEV_XPUB);
    expect(config.chain.rpcUrl).toBe("https://env.example/rpc");
    expect(config.postbacks.secret).toBe("whsec_abc");
  });

  test("the environment wins over the file", () => {
    const config = parseConfig(minimal, { OXBTCPAY_RPC_URL: "https://env.example/rpc" });
    expect(config.chain.rpcUrl).toBe("https://env.example/rpc");
  });

  test.each([
    ["15m", 900],
    ["24h", 86_400],
    ["7d", 604_800],
    ["90s", 90],
    [3600, 3600],
    ["0h", undefined],
    ["1.5h", undefined],
    [-5, undefined],
    [1.5, undefined],
    ["h", undefined],
  ])("parseDuration(%j) = %j", (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  describe("files", () => {
    const dirs: Array<{ cleanup(): void }> = [];
    afterEach(() => {
      for (const d of dirs.splice(0)) d.cleanup();
    });

    test("a missing file and invalid JSON are config errors", () => {
      const dir = tempDir();
      dirs.push(dir);
      expect(() => loadConfig({ path: join(dir.path, "nope.json") })).toThrow(/cannot read/);
      const bad = join(dir.path, "bad.json");
      writeFileSync(bad, "{ nope");
      expect(() => loadConfig({ path: bad })).toThrow(/is not valid JSON/);
    });

    test("the shipped example and dev configs validate", () => {
      for (const file of ["config/example.json", "config/dev.json"]) {
        expect(() => loadConfig({ path: file })).not.toThrow();
      }
    });
  });
});
