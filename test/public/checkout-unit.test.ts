/**
 * The checkout page's pure parts: the EIP-681 link and calldata from bigint
 * base units, the language choice, the screen of each status, and escaping.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { chooseLanguage, fill, messagesOf } from "../../src/public/checkout/i18n.ts";
import { contentSecurityPolicy } from "../../src/public/checkout/index.ts";
import { screenOf } from "../../src/public/checkout/page.ts";
import { erc20TransferUri, transferCalldata } from "../../src/public/checkout/uri.ts";

const TOKEN = "0xb6ed7644c69416d67b522e20bc294a9a9b405b31";
const TO = "0x8c8d35429f74ec245f8ef2f4fd1e551cff97d650";

describe("EIP-681 payment link", () => {
  test("an ERC-20 transfer with the integer amount in base units, no value parameter", async () => {
    expect(erc20TransferUri({ token: TOKEN, chainId: 1, to: TO, amount: 29_000_000n })).toBe(
      `ethereum:${TOKEN}@1/transfer?address=${TO}&uint256=29000000`,
    );
  });

  test("any amount up to 2^256 is plain digits: never exponent notation, never a fraction", async () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }), (amount) => {
        const uri = erc20TransferUri({ token: TOKEN, chainId: 137, to: TO, amount });
        const value = /&uint256=(.*)$/.exec(uri)?.[1] ?? "";
        expect(value).toMatch(/^(0|[1-9][0-9]*)$/);
        expect(BigInt(value)).toBe(amount);
        expect(uri).not.toContain("value=");
      }),
      { numRuns: 1000 },
    );
  });

  test("a negative amount or a bad chain id is refused", async () => {
    expect(() => erc20TransferUri({ token: TOKEN, chainId: 1, to: TO, amount: -1n })).toThrow(
      "amount must not be negative",
    );
    expect(() => erc20TransferUri({ token: TOKEN, chainId: 0, to: TO, amount: 1n })).toThrow(
      "invalid chain id",
    );
  });

  test("transfer calldata: selector a9059cbb, the address and the amount as 32-byte words", async () => {
    expect(transferCalldata({ to: TO, amount: 29_000_000n })).toBe(
      `0xa9059cbb${"0".repeat(24)}${TO.slice(2)}${(29_000_000).toString(16).padStart(64, "0")}`,
    );
    expect(() => transferCalldata({ to: "0x1234", amount: 1n })).toThrow("invalid address");
    expect(() => transferCalldata({ to: TO, amount: 2n ** 256n })).toThrow("amount out of range");
  });
});

describe("language", () => {
  const choose = (over: Partial<Parameters<typeof chooseLanguage>[0]>) =>
    chooseLanguage({
      query: undefined,
      cookie: undefined,
      acceptLanguage: undefined,
      fallback: "en",
      ...over,
    });

  test("?lang= first, then the saved choice, then Accept-Language (any es-*), then the default", async () => {
    expect(choose({ query: "es", cookie: "lang=en", acceptLanguage: "en" })).toBe("es");
    expect(choose({ query: "fr", cookie: "a=1; lang=es", acceptLanguage: "en" })).toBe("es");
    expect(choose({ acceptLanguage: "es-MX,es;q=0.9,en;q=0.8" })).toBe("es");
    expect(choose({ acceptLanguage: "es-419" })).toBe("es");
    expect(choose({ acceptLanguage: "fr-FR, de;q=0.9" })).toBe("en");
    expect(choose({ acceptLanguage: "fr;q=1, es;q=0.5, en;q=0.2" })).toBe("es");
    expect(choose({ acceptLanguage: "es;q=0, en" })).toBe("en");
    expect(choose({ fallback: "es", acceptLanguage: "de" })).toBe("es");
  });

  test("every message exists in both languages with the same placeholders", async () => {
    const en = messagesOf("en");
    const es = messagesOf("es");
    expect(Object.keys(es).sort()).toEqual(Object.keys(en).sort());
    const names = (text: string) => [...text.matchAll(/\{([a-z_]+)\}/gi)].map((m) => m[1]).sort();
    for (const key of Object.keys(en) as Array<keyof typeof en>) {
      expect(names(es[key]), key).toEqual(names(en[key]));
      expect(es[key].length, key).toBeGreaterThan(0);
    }
    expect(fill("{a} and {b}", { a: 1 })).toBe("1 and {b}");
  });
});

describe("screens", () => {
  const view = (
    status: string,
    flags: { paid_late?: boolean; reorged_after_paid?: boolean } = {},
  ) =>
    ({
      status,
      paid_late: flags.paid_late ?? false,
      reorged_after_paid: flags.reorged_after_paid ?? false,
    }) as Parameters<typeof screenOf>[0];
  const units = (amount: bigint, paid: bigint, late = 0n) => ({ amount, paid, late });

  test.each([
    ["waiting", {}, "waiting", units(10n, 0n)],
    ["seen", {}, "partial", units(10n, 4n)],
    ["seen", {}, "confirming", units(10n, 10n)],
    ["seen", {}, "confirming", units(10n, 12n)],
    ["paid", {}, "paid", units(10n, 10n)],
    ["paid", { reorged_after_paid: true }, "reorged", units(10n, 0n)],
    ["expired", {}, "expired", units(10n, 0n)],
    ["expired", {}, "expired_funds", units(10n, 4n)],
    ["expired", { paid_late: true }, "paid_late", units(10n, 10n, 6n)],
    ["cancelled", {}, "cancelled", units(10n, 0n)],
    ["cancelled", {}, "cancelled_funds", units(10n, 10n, 10n)],
  ] as const)("%s %j → %s", (status, flags, screen, amounts) => {
    expect(screenOf(view(status, flags), amounts)).toBe(screen);
  });
});

test("the CSP allows nothing but this origin, and framing only by the configured origins", async () => {
  expect(contentSecurityPolicy([])).toBe(
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  expect(contentSecurityPolicy(["https://shop.example", "https://www.shop.example"])).toMatch(
    /frame-ancestors https:\/\/shop\.example https:\/\/www\.shop\.example$/,
  );
});
