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
      },
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 8888, allow: [], trustProxy: [], apiKeys: [] },
      public: {
        host: "0.0.0.0",
        port: 8080,
        rateLimit: { windowMs: 60_000, max: 600 },
        trustProxy: ["127.0.0.0/8", "::1"],
      },
      payments: { expiresAfter: 86_400, maxAmount: "20999984" },
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

  describe("merchant API keys (issue 6)", () => {
    const sha = `sha256:${"ab".repeat(32)}`;
    const withKeys = (apiKeys: unknown, extra: Record<string, unknown> = {}) => ({
      ...minimal,
      private: { apiKeys, ...extra },
    });

    test("private.apiKeys takes names, hashes and known permissions", () => {
      const config = parseConfig(
        withKeys([{ name: "shop", hash: sha, permissions: ["payments:create", "payments:read"] }]),
      );
      expect(config.private.apiKeys).toEqual([
        { name: "shop", hash: sha, permissions: ["payments:create", "payments:read"] },
      ]);
    });

    test("a plain key, an unknown permission, duplicates and extra members are refused", () => {
      expect(
        issuesOf(
          withKeys([
            { name: "a", hash: "oxk_plainkeyinthefile", permissions: ["payments:create"] },
            { name: "b", hash: sha, permissions: ["payments:delete"] },
            { name: "b", hash: sha, permissions: [] },
            {
              name: "c d",
              hash: `sha256:${"0".repeat(64)}`,
              permissions: ["payments:read"],
              key: "x",
            },
          ]),
        ),
      ).toEqual([
        'private.apiKeys.0.hash: expected "sha256:<64 hex digits>" or "scrypt:<N>:<r>:<p>:<salt>:<hash>" (the key\'s hash, never the key: see `0xbtcpay apikey create`)',
        'private.apiKeys.1.permissions.0: Invalid option: expected one of "payments:create"|"payments:read"|"payments:cancel"|"postbacks:resend"',
        "private.apiKeys.2.permissions: Too small: expected array to have >=1 items",
        "private.apiKeys.3.name: expected 1 to 64 letters, digits, dots, dashes or underscores",
        'private.apiKeys.3: Unrecognized key: "key"',
      ]);
      expect(
        issuesOf(
          withKeys([
            { name: "a", hash: sha, permissions: ["payments:read"] },
            { name: "a", hash: sha, permissions: ["payments:read"] },
          ]),
        ),
      ).toEqual([
        "private.apiKeys.1.name: duplicate key name",
        "private.apiKeys.1.hash: duplicate key hash",
      ]);
    });

    test("scrypt hashes are checked for sane costs", () => {
      const salt = Buffer.alloc(16, 1).toString("base64url");
      const digest = Buffer.alloc(32, 2).toString("base64url");
      const ok = `scrypt:16384:8:1:${salt}:${digest}`;
      expect(issuesOf(withKeys([{ name: "a", hash: ok, permissions: ["payments:read"] }]))).toEqual(
        [],
      );
      for (const bad of [
        `scrypt:1000:8:1:${salt}:${digest}`, // N not a power of two
        `scrypt:${2 ** 21}:8:1:${salt}:${digest}`, // N too big
        `scrypt:16384:8:1:${salt}`,
        `scrypt:16384:8:1:c2FsdA:${digest}`, // salt too short
      ]) {
        expect(
          issuesOf(withKeys([{ name: "a", hash: bad, permissions: ["payments:read"] }])),
        ).toHaveLength(1);
      }
    });

    test("public.rateLimit and public.trustProxy are validated", () => {
      expect(
        issuesOf({
          ...minimal,
          public: { rateLimit: { windowMs: 10, max: -1 }, trustProxy: ["nope"] },
        }),
      ).toEqual([
        "public.rateLimit.windowMs: Too small: expected number to be >=1000",
        "public.rateLimit.max: Too small: expected number to be >=0",
        'public.trustProxy.0: "nope" is not an IP address or CIDR range',
      ]);
      const off = parseConfig({ ...minimal, public: { rateLimit: { max: 0 }, trustProxy: [] } });
      expect(off.public).toEqual({
        host: "0.0.0.0",
        port: 8080,
        rateLimit: { windowMs: 60_000, max: 0 },
        trustProxy: [],
      });
    });
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
