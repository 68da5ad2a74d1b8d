import fc from "fast-check";
import { afterAll, describe, expect, onTestFinished, test } from "vitest";
import { createAddressDeriver } from "../../src/addresses/index.ts";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { createAllowlist } from "../../src/internal/allowlist.ts";
import { createClock } from "../../src/internal/clock.ts";
import { createPayments } from "../../src/payments/index.ts";
import {
  checkLiteralTarget,
  createTargetGuard,
  createTargetPolicy,
  normalizedHost,
  type Resolver,
} from "../../src/postbacks/targets.ts";
import { createPrivateListener } from "../../src/rpc/index.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import { createSqliteStorage } from "../../src/store/sqlite/storage.ts";
import { silentLogger } from "../helpers/index.ts";
import { listenNode, request } from "../helpers/private-app.ts";

// No test here connects to a postback target: names resolve only through this map.
function fakeResolver(table: Record<string, string[]>) {
  const calls: string[] = [];
  const resolve: Resolver = async (hostname) => {
    calls.push(hostname);
    const addresses = table[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
        code: "ENOTFOUND",
      });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return { resolve, calls };
}

const guards: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const guard of guards) await guard.close();
});

describe("SSRF guard: address classification (pure)", () => {
  const policy = createTargetPolicy();

  test.each([
    // The loopback address and the encodings the WHATWG URL parser folds into it.
    ["http://127.0.0.1/", "127.0.0.1 (loopback)"],
    ["http://0x7f000001/", "127.0.0.1 (loopback)"],
    ["http://2130706433/", "127.0.0.1 (loopback)"],
    ["http://127.1/", "127.0.0.1 (loopback)"],
    ["http://017700000001/", "127.0.0.1 (loopback)"],
    ["http://0177.0.0.1/", "127.0.0.1 (loopback)"],
    ["http://0x7f.1/", "127.0.0.1 (loopback)"],
    ["http://127.0.0.1./", "127.0.0.1 (loopback)"],
    ["http://%31%32%37.0.0.1/", "127.0.0.1 (loopback)"],
    ["http://127.255.255.254:8080/x", "127.255.255.254 (loopback)"],
    ["http://[::1]/", "::1 (loopback)"],
    ["http://[0:0:0:0:0:0:0:1]/", "::1 (loopback)"],
    // Unspecified, private, link-local (cloud metadata), CGNAT.
    ["http://0/", "0.0.0.0 (unspecified)"],
    ["http://0.0.0.0:80/", "0.0.0.0 (unspecified)"],
    ["http://[::]/", ":: (unspecified)"],
    ["http://10.0.0.1/", "10.0.0.1 (private)"],
    ["http://172.16.5.4/", "172.16.5.4 (private)"],
    ["http://172.31.255.255/", "172.31.255.255 (private)"],
    ["http://192.168.1.1/", "192.168.1.1 (private)"],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 (linkLocal)"],
    ["http://[fe80::1]/", "fe80::1 (linkLocal)"],
    ["http://100.64.0.1/", "100.64.0.1 (carrierGradeNat)"],
    ["http://100.127.255.254/", "100.127.255.254 (carrierGradeNat)"],
    // Unique-local, site-local, multicast, broadcast.
    ["http://[fc00::1]/", "fc00::1 (uniqueLocal)"],
    ["http://[fd12:3456::1]/", "fd12:3456::1 (uniqueLocal)"],
    ["http://[fec0::1]/", "fec0::1 (deprecatedSiteLocal)"],
    ["http://224.0.0.1/", "224.0.0.1 (multicast)"],
    ["http://[ff02::1]/", "ff02::1 (multicast)"],
    ["http://255.255.255.255/", "255.255.255.255 (broadcast)"],
    // Reserved, documentation and benchmarking ranges.
    ["http://192.0.2.10/", "192.0.2.10 (reserved)"],
    ["http://198.51.100.7/", "198.51.100.7 (reserved)"],
    ["http://203.0.113.9/", "203.0.113.9 (reserved)"],
    ["http://198.18.0.1/", "198.18.0.1 (reserved)"],
    ["http://240.0.0.1/", "240.0.0.1 (reserved)"],
    ["http://[2001:db8::1]/", "2001:db8::1 (reserved)"],
    ["http://[100::1]/", "100::1 (discard)"],
    // IPv6 forms that carry a blocked IPv4 address.
    ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 (ipv4Mapped loopback)"],
    ["http://[::ffff:7f00:1]/", "::ffff:7f00:1 (ipv4Mapped loopback)"],
    ["http://[::ffff:10.0.0.1]/", "::ffff:a00:1 (ipv4Mapped private)"],
    ["http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe (ipv4Mapped linkLocal)"],
    ["http://[::ffff:0:127.0.0.1]/", "::ffff:0:7f00:1 (rfc6145 loopback)"],
    ["http://[64:ff9b::127.0.0.1]/", "64:ff9b::7f00:1 (rfc6052 loopback)"],
    ["http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe (rfc6052 linkLocal)"],
    ["http://[64:ff9b:1::1]/", "64:ff9b:1::1 (rfc6052)"],
    ["http://[2002:7f00:1::]/", "2002:7f00:1:: (6to4 loopback)"],
    ["http://[2002:c0a8:101::1]/", "2002:c0a8:101::1 (6to4 private)"],
    ["http://[::127.0.0.1]/", "::7f00:1 (ipv4Compatible)"],
    ["http://[2001::1]/", "2001::1 (teredo)"],
  ])("%s is refused: %s", (url, reason) => {
    expect(checkLiteralTarget(url, policy)).toEqual({ allowed: false, reason });
  });

  test.each([
    "https://93.184.215.14/payment_complete",
    "http://8.8.8.8:8080/",
    "http://134744072/",
    "http://0x08080808/",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::1]/",
    "http://100.128.0.1/",
    "http://172.32.0.1/",
  ])("%s (public unicast) is allowed", (url) => {
    expect(checkLiteralTarget(url, policy)).toEqual({ allowed: true });
  });

  test("a host name is not judged without resolving it", async () => {
    expect(checkLiteralTarget("https://shop.example/pb", policy)).toBeUndefined();
    expect(checkLiteralTarget("http://localhost:8080/", policy)).toBeUndefined();
    expect(normalizedHost("http://LOCALHOST./")).toBe("localhost.");
    expect(normalizedHost("http://[::FFFF:127.0.0.1]:80/")).toBe("::ffff:7f00:1");
  });

  test("allowTargets lets listed ranges through, and only those", async () => {
    const local = createTargetPolicy({ allowTargets: ["127.0.0.1/32", "::1/128", "10.1.2.0/24"] });
    for (const url of [
      "http://127.0.0.1:8080/",
      "http://0x7f000001/",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://10.1.2.3/",
    ]) {
      expect(checkLiteralTarget(url, local), url).toEqual({ allowed: true });
    }
    expect(checkLiteralTarget("http://127.0.0.2/", local)).toEqual({
      allowed: false,
      reason: "127.0.0.2 (loopback)",
    });
    expect(checkLiteralTarget("http://10.1.3.1/", local)).toEqual({
      allowed: false,
      reason: "10.1.3.1 (private)",
    });
  });

  test("property: every address of 127/8, 10/8 and 169.254/16, in any folded spelling, is refused", async () => {
    const blocked = fc.oneof(
      fc.integer({ min: 0x7f000000, max: 0x7fffffff }),
      fc.integer({ min: 0x0a000000, max: 0x0affffff }),
      fc.integer({ min: 0xa9fe0000, max: 0xa9feffff }),
    );
    const spell = (n: number, form: number) => {
      const octets = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
      const dotted = octets.join(".");
      switch (form) {
        case 0:
          return String(n);
        case 1:
          return `0x${n.toString(16)}`;
        case 2:
          return `0${n.toString(8)}`;
        case 3:
          return `${octets[0]}.${n & 0xffffff}`;
        case 4:
          return `[::ffff:${dotted}]`;
        case 5:
          return `[64:ff9b::${dotted}]`;
        default:
          return octets.map((o) => `0x${o.toString(16)}`).join(".");
      }
    };
    fc.assert(
      fc.property(blocked, fc.integer({ min: 0, max: 6 }), (n, form) => {
        const verdict = checkLiteralTarget(`http://${spell(n, form)}/`, policy);
        return verdict !== undefined && !verdict.allowed;
      }),
      { numRuns: 500 },
    );
  });
});

describe("SSRF guard: names (injected resolver, no connection)", () => {
  test("a name is refused if any of its addresses is blocked, allowed if all are public", async () => {
    const { resolve, calls } = fakeResolver({
      "shop.test": ["93.184.215.14", "2606:4700:4700::1111"],
      "mixed.test": ["93.184.215.14", "10.0.0.5"],
      "localhost.test": ["127.0.0.1"],
      "metadata.test": ["::ffff:169.254.169.254"],
    });
    const guard = createTargetGuard({ resolve });
    guards.push(guard);
    expect(await guard.checkUrl("https://shop.test/pb")).toEqual({ allowed: true });
    expect(await guard.checkUrl("https://mixed.test/pb")).toEqual({
      allowed: false,
      reason: "mixed.test resolves to 10.0.0.5 (private)",
    });
    expect(await guard.checkUrl("http://localhost.test:8080/")).toEqual({
      allowed: false,
      reason: "localhost.test resolves to 127.0.0.1 (loopback)",
    });
    expect(await guard.checkUrl("http://metadata.test/")).toEqual({
      allowed: false,
      reason: "metadata.test resolves to ::ffff:169.254.169.254 (ipv4Mapped linkLocal)",
    });
    // IP literals are judged without the resolver.
    expect(await guard.checkUrl("http://2130706433/")).toEqual({
      allowed: false,
      reason: "127.0.0.1 (loopback)",
    });
    expect(calls).toEqual(["shop.test", "mixed.test", "localhost.test", "metadata.test"]);
  });

  test("a name that does not resolve (or not in time) is allowed at start: delivery checks again", async () => {
    const { resolve } = fakeResolver({});
    const guard = createTargetGuard({ resolve });
    guards.push(guard);
    expect(await guard.checkUrl("https://nowhere.test/")).toEqual({ allowed: true });
    const slow = createTargetGuard({
      resolve: () => new Promise(() => {}),
      resolveTimeoutMs: 20,
    });
    guards.push(slow);
    expect(await slow.checkUrl("https://slow.test/")).toEqual({ allowed: true });
  });
});

describe("start_payment and resend_postback with the guard", () => {
  async function setup() {
    const db = openDatabase({ path: ":memory:" });
    const payments = await createPayments({
      storage: createSqliteStorage(db),
      deriver: createAddressDeriver({ xpub: DEV_XPUB }),
      clock: createClock(),
      logger: silentLogger,
      chainId: 31337,
      token: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
      decimals: 8,
      requiredConfirmations: 3,
      expiresAfterSeconds: 86_400,
    });
    const { resolve } = fakeResolver({
      "shop.test": ["93.184.215.14"],
      "intranet.test": ["10.0.0.5"],
    });
    const guard = createTargetGuard({ resolve });
    guards.push(guard);
    const resent: string[] = [];
    const server = await listenNode(
      createPrivateListener({
        payments,
        allowlist: createAllowlist({ allow: [] }),
        decimals: 8,
        maxWholeTokens: 20_999_984n,
        logger: silentLogger,
        postbacks: {
          checkUrl: (url) => guard.checkUrl(url),
          resend: async (id) => {
            resent.push(id);
            return id === "evt_known" ? ["evt_known"] : [];
          },
        },
      }),
    );
    onTestFinished(() => server.close());
    const call = async (method: string, params: unknown) => {
      const response = await request(server.port, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 7, method, params }),
      });
      // biome-ignore lint/suspicious/noExplicitAny: tests inspect JSON-RPC bodies
      return (await response.json()) as any;
    };
    const count = () => (db.prepare("SELECT count(*) AS n FROM payments").get() as { n: number }).n;
    return { call, count, resent };
  }

  test("a malformed URL keeps the compat message; a blocked target gets ': target not allowed'", async () => {
    const { call, count } = await setup();
    const cases: Array<[unknown, string | null]> = [
      ["not a url", "Invalid params: invalid postback URL"],
      ["ftp://shop.test/pb", "Invalid params: invalid postback URL"],
      ["http://127.0.0.1:9/pb", "Invalid params: invalid postback URL: target not allowed"],
      ["http://0x7f000001/pb", "Invalid params: invalid postback URL: target not allowed"],
      ["http://[::ffff:10.0.0.1]/pb", "Invalid params: invalid postback URL: target not allowed"],
      ["http://169.254.169.254/", "Invalid params: invalid postback URL: target not allowed"],
      ["https://intranet.test/pb", "Invalid params: invalid postback URL: target not allowed"],
      ["https://shop.test/pb", null],
    ];
    for (const [postbackUrl, message] of cases) {
      const body = await call("start_payment", { amount: "1", postback_url: postbackUrl });
      if (message === null) {
        expect(body.result.id).toMatch(/^[0-9a-f]{16}$/);
      } else {
        expect(body, String(postbackUrl)).toEqual({
          jsonrpc: "2.0",
          error: { code: -32602, message },
          id: 7,
        });
      }
    }
    expect(count()).toBe(1);
  });

  test("resend_postback: unknown id and missing id are -32602; a known id lists what was re-queued", async () => {
    const { call, resent } = await setup();
    expect(await call("resend_postback", { id: "evt_nope" })).toEqual({
      jsonrpc: "2.0",
      error: { code: -32602, message: "Invalid params: unknown id" },
      id: 7,
    });
    expect((await call("resend_postback", {})).error).toEqual({
      code: -32602,
      message: "Invalid params: missing id",
    });
    expect(await call("resend_postback", { id: "evt_known" })).toEqual({
      jsonrpc: "2.0",
      result: { requeued: ["evt_known"] },
      id: 7,
    });
    expect(resent).toEqual(["evt_nope", "evt_known"]);
  });
});
