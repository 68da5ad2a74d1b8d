/**
 * API key hashing, verification and the `apikey create` command.
 */
import { createHash } from "node:crypto";
import { describe, expect, test } from "vitest";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import {
  createApiKeyVerifier,
  generateApiKey,
  hashApiKey,
  parseKeyHash,
} from "../../src/rpc/api-keys.ts";
import { cli } from "../helpers/cli.ts";

describe("API keys", () => {
  test("generated keys are oxk_ plus 32 random bytes in base64url", async () => {
    const keys = new Set(Array.from({ length: 50 }, generateApiKey));
    expect(keys.size).toBe(50);
    for (const key of keys) expect(key).toMatch(/^oxk_[A-Za-z0-9_-]{43}$/);
  });

  test("sha256 hashes are the hex digest of the whole key", async () => {
    const key = "oxk_example";
    expect(hashApiKey(key)).toBe(`sha256:${createHash("sha256").update(key).digest("hex")}`);
    expect(parseKeyHash(hashApiKey(key))?.kind).toBe("sha256");
  });

  test("scrypt hashes are salted: the same key hashes differently each time, and both verify", async () => {
    const key = generateApiKey();
    const [a, b] = [hashApiKey(key, "scrypt"), hashApiKey(key, "scrypt")];
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt:16384:8:1:[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]{43}$/);
    for (const hash of [a, b]) {
      const verifier = createApiKeyVerifier({
        entries: [{ name: "s", hash, permissions: ["payments:read"] }],
      });
      expect(await verifier.verify(`Bearer ${key}`)).toMatchObject({
        ok: true,
        key: { name: "s" },
      });
      expect(await verifier.verify(`Bearer ${key}x`)).toEqual({
        ok: false,
        reason: "invalid API key",
      });
    }
  });

  test("the verifier finds the right key among several and reports missing vs invalid", async () => {
    const keys = [generateApiKey(), generateApiKey()];
    const verifier = createApiKeyVerifier({
      entries: keys.map((key, i) => ({
        name: `k${i}`,
        hash: hashApiKey(key),
        permissions: i === 0 ? ["payments:create"] : ["payments:read", "payments:cancel"],
      })),
    });
    expect(verifier.enabled).toBe(true);
    const second = await verifier.verify(`Bearer ${keys[1]}`);
    expect(second.ok && second.key.name).toBe("k1");
    expect(second.ok && [...second.key.permissions]).toEqual(["payments:read", "payments:cancel"]);
    expect(await verifier.verify(undefined)).toEqual({ ok: false, reason: "missing API key" });
    expect(await verifier.verify("Token abc")).toEqual({ ok: false, reason: "missing API key" });
    expect(await verifier.verify("Bearer a b")).toEqual({ ok: false, reason: "missing API key" });
    expect(await verifier.verify("Bearer oxk_nope")).toEqual({
      ok: false,
      reason: "invalid API key",
    });
    expect(createApiKeyVerifier({ entries: [] }).enabled).toBe(false);
  });
});

describe("0xbtcpay apikey create", () => {
  test("prints the key once and a config entry that holds only its hash", async () => {
    const { code, stdout } = await cli([
      "apikey",
      "create",
      "--name",
      "shop",
      "--permissions",
      "payments:create,payments:read",
    ]);
    expect(code).toBe(0);
    const key = /^ {2}(oxk_[A-Za-z0-9_-]{43})$/m.exec(stdout)?.[1] as string;
    expect(key).toBeDefined();
    expect(stdout.split(key)).toHaveLength(2); // printed exactly once
    const entry = JSON.parse(/^ {2}(\{.*\})$/m.exec(stdout)?.[1] as string);
    expect(entry).toEqual({
      name: "shop",
      hash: hashApiKey(key),
      permissions: ["payments:create", "payments:read"],
    });
    // The entry pastes into a valid config, and the key verifies against it.
    const config = parseConfig({
      chain: { rpcUrl: "http://127.0.0.1:8545", chainId: 31337 },
      wallet: { xpub: DEV_XPUB },
      private: { apiKeys: [entry] },
      database: { path: "x.sqlite" },
    });
    const verifier = createApiKeyVerifier({ entries: config.private.apiKeys });
    expect(await verifier.verify(`Bearer ${key}`)).toMatchObject({ ok: true });
  });

  test("--hash scrypt gives a scrypt entry that verifies", async () => {
    const { code, stdout } = await cli([
      "apikey",
      "create",
      "--name",
      "reader",
      "--permissions",
      "payments:read",
      "--hash",
      "scrypt",
    ]);
    expect(code).toBe(0);
    const key = /^ {2}(oxk_[A-Za-z0-9_-]{43})$/m.exec(stdout)?.[1] as string;
    const entry = JSON.parse(/^ {2}(\{.*\})$/m.exec(stdout)?.[1] as string);
    expect(entry.hash).toMatch(/^scrypt:/);
    const verifier = createApiKeyVerifier({ entries: [entry] });
    expect(await verifier.verify(`Bearer ${key}`)).toMatchObject({ ok: true });
  });

  test("unknown permissions and a missing name are refused", async () => {
    const bad = await cli(["apikey", "create", "--name", "x", "--permissions", "payments:delete"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown: payments:delete/);
    expect(bad.stdout).toBe("");
    const noName = await cli(["apikey", "create", "--permissions", "payments:read"]);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toMatch(/--name/);
  });

  test("apikey create --help describes the command", async () => {
    const { code, stdout } = await cli(["apikey", "create", "--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: 0xbtcpay apikey create /);
  });
});
