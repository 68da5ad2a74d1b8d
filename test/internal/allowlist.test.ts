import { describe, expect, test } from "vitest";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import { clientAddress, createAllowlist, parseCidr } from "../../src/internal/allowlist.ts";
import { ConfigError } from "../../src/internal/errors.ts";

describe("allowlist matcher", () => {
  const list = createAllowlist({
    allow: ["203.0.113.7", "10.1.0.0/16", "2001:db8::/32", "::ffff:198.51.100.9"],
  });

  test.each([
    ["127.0.0.1", true, "IPv4 loopback is always allowed"],
    ["127.8.9.10", true, "all of 127/8 is loopback"],
    ["::1", true, "IPv6 loopback"],
    ["::ffff:127.0.0.1", true, "IPv4-mapped loopback"],
    ["203.0.113.7", true, "listed IPv4"],
    ["::ffff:203.0.113.7", true, "listed IPv4 seen as IPv4-mapped IPv6"],
    ["203.0.113.8", false, "neighbour of a listed IPv4"],
    ["10.1.255.254", true, "inside a CIDR"],
    ["10.2.0.1", false, "outside a CIDR"],
    ["2001:db8:1::5", true, "inside an IPv6 CIDR"],
    ["2001:db9::1", false, "outside an IPv6 CIDR"],
    ["198.51.100.9", true, "listed as IPv4-mapped, seen as IPv4"],
    ["192.168.1.1", false, "private but not listed"],
    ["not-an-ip", false, "garbage peer"],
    ["", false, "empty peer"],
  ])("%s → %s (%s)", (peer, expected) => {
    expect(list.allows(peer)).toBe(expected);
  });

  test("an unknown peer is refused", async () => {
    expect(list.allows(undefined)).toBe(false);
  });

  test("loopback exemption can be turned off (trusted-proxy lists, tests)", async () => {
    const strict = createAllowlist({ allow: ["10.0.0.1"], loopback: false });
    expect(strict.allows("127.0.0.1")).toBe(false);
    expect(strict.allows("10.0.0.1")).toBe(true);
  });

  test.each(["10.0.0.0/33", "10.0.0", "300.1.1.1", "fe80::zz", "hello", "10.0.0.1/", ""])(
    "parseCidr rejects %j",
    (entry) => {
      expect(parseCidr(entry)).toBeUndefined();
    },
  );
});

describe("X-Forwarded-For", () => {
  const proxies = createAllowlist({ allow: ["10.0.0.2"], loopback: false });

  test("is ignored without a trusted proxy", async () => {
    expect(
      clientAddress({ peer: "203.0.113.1", forwardedFor: "127.0.0.1", trustProxy: undefined }),
    ).toBe("203.0.113.1");
  });

  test("is ignored when the peer is not a trusted proxy", async () => {
    expect(
      clientAddress({ peer: "203.0.113.1", forwardedFor: "127.0.0.1", trustProxy: proxies }),
    ).toBe("203.0.113.1");
  });

  test("gives the right-most untrusted hop behind a trusted proxy", async () => {
    expect(
      clientAddress({
        peer: "10.0.0.2",
        forwardedFor: "127.0.0.1, 198.51.100.4, 10.0.0.2",
        trustProxy: proxies,
      }),
    ).toBe("198.51.100.4");
  });

  test("a garbage hop gives no address (refused)", async () => {
    expect(
      clientAddress({ peer: "10.0.0.2", forwardedFor: "nonsense", trustProxy: proxies }),
    ).toBeUndefined();
  });
});

describe("allowlist config", () => {
  const base = {
    chain: { rpcUrl: "http://127.0.0.1:8545", chainId: 31337 },
    wallet: { xpub: DEV_XPUB },
    database: { path: ":memory:" },
  };

  test("garbage entries are rejected at config load, naming the key", async () => {
    let error: unknown;
    try {
      parseConfig({ ...base, private: { allow: ["10.0.0.1", "10.0.0.0/99", "bogus"] } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      'private.allow.1: "10.0.0.0/99" is not an IP address or CIDR range',
      'private.allow.2: "bogus" is not an IP address or CIDR range',
    ]);
  });

  test("valid entries load", async () => {
    const config = parseConfig({ ...base, private: { allow: ["10.0.0.1", "fd00::/8"] } });
    expect(config.private.allow).toEqual(["10.0.0.1", "fd00::/8"]);
  });
});
