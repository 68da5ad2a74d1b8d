import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { loadConfig, parseConfig, parseDuration } from "../../src/config/index.ts";
import { ConfigError } from "../../src/internal/errors.ts";
import { tempDir } from "../helpers/index.ts";

const minimal = {
  chain: { rpcUrl: "https://rpc.example/v1", chainId: 1 },
  wallet: { xpub: DEV_XPUB },
  database: { path: "/tmp/x.sqlite" },
};

const SECRET = `whsec_${Buffer.alloc(32, 1).toString("base64")}`;
const OLD_SECRET = `whsec_${Buffer.alloc(24, 2).toString("base64")}`;
const OLDER_SECRET = `whsec_${Buffer.alloc(64, 3).toString("base64")}`;

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
  test("a minimal config gets the documented defaults", async () => {
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
        name: "Ethereum",
        symbol: "0xBTC",
        explorerUrl: "https://etherscan.io",
      },
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 8888, allow: [], trustProxy: [], apiKeys: [] },
      public: {
        host: "0.0.0.0",
        port: 8080,
        rateLimit: { windowMs: 60_000, max: 600 },
        trustProxy: ["127.0.0.0/8", "::1"],
        maxConnectionsPerIp: 256,
        headersTimeoutMs: 10_000,
        keepAliveTimeoutMs: 5_000,
      },
      checkout: { language: "en", frameAncestors: [], themeColor: "#c2410c" },
      payments: { expiresAfter: 86_400, monitorFor: 604_800, maxAmount: "20999984" },
      postbacks: {
        previousSecrets: [],
        timeoutMs: 15_000,
        retrySchedule: [
          5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000,
          86_400_000,
        ],
        allowTargets: [],
        concurrency: 8,
        events: ["payment.paid"],
      },
      ops: {
        enabled: true,
        host: "127.0.0.1",
        port: 9464,
        ready: { maxHeadAge: 180_000, maxRpcLatency: 10_000 },
      },
      database: { path: "/tmp/x.sqlite" },
      log: { level: "info" },
    });
  });

  test("every error names the key and the problem", async () => {
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

  test("database: path (SQLite) or url (PostgreSQL, also from OXBTCPAY_DATABASE_URL), exactly one; errors never echo the password", async () => {
    const url = "postgres://shop:hunter2@127.0.0.1:5432/pay";
    expect(parseConfig({ ...minimal, database: { url } }).database).toEqual({ url });
    expect(
      parseConfig({ ...minimal, database: {} }, { OXBTCPAY_DATABASE_URL: url }).database,
    ).toEqual({ url });
    const both = issuesOf({ ...minimal, database: { path: "/tmp/x.sqlite", url } });
    expect(both).toEqual([
      "database: give either database.path (SQLite) or database.url (PostgreSQL), not both",
    ]);
    expect(issuesOf({ ...minimal, database: {} })).toEqual([
      "database: give database.path (a SQLite file) or database.url (PostgreSQL, or OXBTCPAY_DATABASE_URL)",
    ]);
    const wrong = issuesOf({ ...minimal, database: { url: "mysql://shop:hunter2@127.0.0.1/pay" } });
    expect(wrong).toEqual(["database.url: expected a postgres:// or postgresql:// URL"]);
    expect([...both, ...wrong].join("\n")).not.toContain("hunter2");
  });

  test("an xprv in wallet.xpub is refused with the reason", async () => {
    const xprv =
      "xprvA1RBzNvgwwwvNvUXoakDR7ZAYzs4HGgWCpyeZDBqDwcHAW9zHbAExhv8ReRd5bENcYypmCx9fPhb8gPnyF5pVXb4uhy3tNd2GpP1ZqHrC8k";
    const [issue] = issuesOf({ ...minimal, wallet: { xpub: xprv } });
    expect(issue).toMatch(/^wallet\.xpub: this is an extended PRIVATE key \(xprv\)/);
  });

  test("secrets may come from the environment instead of the file", async () => {
    const config = parseConfig(
      { chain: { chainId: 1 }, database: { path: "x" } },
      {
        OXBTCPAY_XPUB: DEV_XPUB,
        OXBTCPAY_RPC_URL: "https://env.example/rpc",
        OXBTCPAY_POSTBACK_SECRET: SECRET,
        OXBTCPAY_POSTBACK_PREVIOUS_SECRETS: `${OLD_SECRET} ${OLDER_SECRET}`,
      },
    );
    expect(config.wallet.xpub).toBe(DEV_XPUB);
    expect(config.chain.rpcUrl).toBe("https://env.example/rpc");
    expect(config.postbacks.secret).toBe(SECRET);
    expect(config.postbacks.previousSecrets).toEqual([OLD_SECRET, OLDER_SECRET]);
  });

  test("postback keys: secrets must be whsec_ base64 of 24+ bytes, delays parse to ms, targets are CIDRs", async () => {
    const short = `whsec_${Buffer.alloc(23, 1).toString("base64")}`;
    const issues = issuesOf({
      ...minimal,
      postbacks: {
        secret: short,
        previousSecrets: ["whsec_not base64!", SECRET],
        retrySchedule: ["250ms", "1.5s", -1],
        allowTargets: ["10.0.0.0/33"],
        concurrency: 0,
      },
    });
    const hint =
      'expected "whsec_" followed by the base64 of 24 to 64 random bytes (make one with `0xbtcpay secret`)';
    expect(issues).toEqual([
      `postbacks.secret: ${hint}`,
      `postbacks.previousSecrets.0: ${hint}`,
      'postbacks.retrySchedule.1: expected a delay such as "500ms", "5s", "30m", "2h" or a whole number of seconds, at most 30 days',
      'postbacks.retrySchedule.2: expected a delay such as "500ms", "5s", "30m", "2h" or a whole number of seconds, at most 30 days',
      'postbacks.allowTargets.0: "10.0.0.0/33" is not an IP address or CIDR range',
      "postbacks.concurrency: Too small: expected number to be >=1",
    ]);
    // The secret itself never appears in an error.
    expect(issues.join("\n")).not.toContain(short.slice(6));
    for (const secret of ["whsec_", "sk_abc", SECRET.slice(6), `${SECRET}=`]) {
      expect(issuesOf({ ...minimal, postbacks: { secret } })).toEqual([
        `postbacks.secret: ${hint}`,
      ]);
    }
    expect(issuesOf({ ...minimal, postbacks: { previousSecrets: [OLD_SECRET] } })).toEqual([
      "postbacks.previousSecrets: needs postbacks.secret (the new secret) during a rotation",
    ]);
    const ok = parseConfig({
      ...minimal,
      postbacks: {
        secret: SECRET,
        retrySchedule: ["250ms", "5s", 2, "1m", "2h", "1d", "0s"],
        allowTargets: ["10.1.2.0/24", "fd00::/8"],
      },
    });
    expect(ok.postbacks.retrySchedule).toEqual([250, 5000, 2000, 60_000, 7_200_000, 86_400_000, 0]);
    expect(ok.postbacks.allowTargets).toEqual(["10.1.2.0/24", "fd00::/8"]);
  });

  test("the environment wins over the file", async () => {
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

  describe("merchant API keys", () => {
    const sha = `sha256:${"ab".repeat(32)}`;
    const withKeys = (apiKeys: unknown, extra: Record<string, unknown> = {}) => ({
      ...minimal,
      private: { apiKeys, ...extra },
    });

    test("private.apiKeys takes names, hashes and known permissions", async () => {
      const config = parseConfig(
        withKeys([{ name: "shop", hash: sha, permissions: ["payments:create", "payments:read"] }]),
      );
      expect(config.private.apiKeys).toEqual([
        { name: "shop", hash: sha, permissions: ["payments:create", "payments:read"] },
      ]);
    });

    test("a plain key, an unknown permission, duplicates and extra members are refused", async () => {
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

    test("scrypt hashes are checked for sane costs", async () => {
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

    test("public.rateLimit and public.trustProxy are validated", async () => {
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
        maxConnectionsPerIp: 256,
        headersTimeoutMs: 10_000,
        keepAliveTimeoutMs: 5_000,
      });
    });

    test("public.url and checkout.* are validated", async () => {
      expect(
        issuesOf({
          ...minimal,
          public: { url: "ftp://pay.shop.example" },
          checkout: {
            language: "fr",
            support: "call us",
            themeColor: "#ffee00",
            frameAncestors: ["https://shop.example/checkout"],
            redirectAfterPaidSeconds: -1,
            shopName: "",
          },
        }),
      ).toEqual([
        "public.url: expected an http(s) URL",
        "checkout.shopName: Too small: expected string to have >=1 characters",
        'checkout.language: Invalid option: expected one of "en"|"es"',
        "checkout.support: expected an http(s) URL or an e-mail address",
        "checkout.redirectAfterPaidSeconds: Too small: expected number to be >=0",
        'checkout.frameAncestors.0: expected an origin such as "https://shop.example" (no path, no trailing slash)',
        "checkout.themeColor: too light: white text on it must have a contrast of at least 4.5:1 (WCAG AA)",
      ]);
      const ok = parseConfig({
        ...minimal,
        chain: {
          ...minimal.chain,
          chainId: 31337,
          name: "Dev net",
          explorerUrl: "https://x.example/",
        },
        public: { url: "https://pay.shop.example/" },
        checkout: { support: "help@shop.example", frameAncestors: ["https://shop.example"] },
      });
      expect(ok.public.url).toBe("https://pay.shop.example");
      expect(ok.chain).toMatchObject({ name: "Dev net", explorerUrl: "https://x.example" });
      expect(ok.checkout).toEqual({
        language: "en",
        support: "help@shop.example",
        frameAncestors: ["https://shop.example"],
        themeColor: "#c2410c",
      });
      expect(
        parseConfig({ ...minimal, chain: { ...minimal.chain, chainId: 5 } }).chain,
      ).toMatchObject({ name: "Chain 5" });
    });
  });

  describe("files", () => {
    const dirs: Array<{ cleanup(): void }> = [];
    afterEach(() => {
      for (const d of dirs.splice(0)) d.cleanup();
    });

    test("a missing file and invalid JSON are config errors", async () => {
      const dir = tempDir();
      dirs.push(dir);
      expect(() => loadConfig({ path: join(dir.path, "nope.json") })).toThrow(/cannot read/);
      const bad = join(dir.path, "bad.json");
      writeFileSync(bad, "{ nope");
      expect(() => loadConfig({ path: bad })).toThrow(/is not valid JSON/);
    });

    test("the shipped example and dev configs validate", async () => {
      for (const file of ["config/example.json", "config/dev.json"]) {
        expect(() => loadConfig({ path: file })).not.toThrow();
      }
      // The replicas' example: PostgreSQL instead of a SQLite file.
      expect(loadConfig({ path: "config/example-replicas.json" }).database).toEqual({
        url: "postgres://oxbtcpay:PASSWORD@db.internal:5432/oxbtcpay",
      });
    });
  });

  test("the chain-watching and late-funds keys reject bad values, naming the key", async () => {
    expect(
      issuesOf({
        ...minimal,
        chain: { ...minimal.chain, finalityDepth: 0, wsUrl: "https://not-a-socket" },
        payments: { monitorFor: "a while" },
      }),
    ).toEqual([
      "chain.finalityDepth: Too small: expected number to be >=1",
      "chain.wsUrl: expected a ws(s) URL",
      'payments.monitorFor: expected a duration such as "15m", "24h", "7d" or a whole number of seconds',
    ]);
  });
});
