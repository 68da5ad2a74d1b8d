import { describe, expect, test } from "vitest";
import { formatAmount, parseAmount } from "../../src/payments/amount.ts";

const parse = (input: unknown) => parseAmount(input, { decimals: 8 });

describe("parseAmount (0xBTC, 8 decimals)", () => {
  test.each([
    ["0.29", 29_000_000n],
    ["1", 100_000_000n],
    ["222.333", 22_233_300_000n],
    ["0.00000001", 1n],
    ["20999984", 2_099_998_400_000_000n],
    ["00000001.5", 150_000_000n],
    ["12345678.12345678", 1_234_567_812_345_678n],
  ])("accepts %j as %s base units", (input, expected) => {
    expect(parse(input)).toEqual({ ok: true, value: expected });
  });

  test.each([
    ["20999984.00000001", "above the supply cap"],
    ["20999985", "above the supply cap"],
    ["0", "zero"],
    ["0.00000000", "zero"],
    ["1e3", "exponent"],
    [" 1", "leading space"],
    ["1 ", "trailing space"],
    ["1.", "dot without decimals"],
    [".5", "no integer part"],
    ["-1", "negative"],
    ["+1", "plus sign"],
    ["1.123456789", "9 decimals"],
    ["123456789", "9 integer digits"],
    ["0x10", "hex"],
    ["1,5", "comma"],
    ["", "empty"],
    ["١", "non-ASCII digit"],
  ])("rejects %j (%s)", (input, _why) => {
    expect(parse(input)).toEqual({ ok: false });
  });

  test.each([
    [1.5, "a JSON number"],
    [29, "an integer number"],
    [null, "null"],
    [true, "a boolean"],
    [["1"], "an array"],
    [{ value: "1" }, "an object"],
  ])("rejects %j (%s)", (input, _why) => {
    expect(parse(input)).toEqual({ ok: false });
  });

  test("derives the decimal limit from the token's decimals", async () => {
    expect(parseAmount("1.123", { decimals: 2 })).toEqual({ ok: false });
    expect(parseAmount("1.12", { decimals: 2 })).toEqual({ ok: true, value: 112n });
    expect(parseAmount("1.5", { decimals: 0 })).toEqual({ ok: false });
    expect(parseAmount("15", { decimals: 0 })).toEqual({ ok: true, value: 15n });
  });

  test("honours a lower configured maximum", async () => {
    expect(parseAmount("100", { decimals: 8, maxWholeTokens: 100n }).ok).toBe(true);
    expect(parseAmount("100.00000001", { decimals: 8, maxWholeTokens: 100n }).ok).toBe(false);
  });
});

describe("formatAmount", () => {
  test.each([
    [29_000_000n, "0.29"],
    [100_000_000n, "1"],
    [22_233_300_000n, "222.333"],
    [1n, "0.00000001"],
    [0n, "0"],
    [2_099_998_400_000_000n, "20999984"],
    [10n ** 30n, "10000000000000000000000"],
  ])("formats %s base units as %j", (value, expected) => {
    expect(formatAmount(value, 8)).toBe(expected);
  });

  test.each([
    ["1.50", "1.5"],
    ["007", "7"],
    ["222.333", "222.333"],
    ["10.00000000", "10"],
  ])("echoes %j back as %j", (input, expected) => {
    const parsed = parse(input);
    if (!parsed.ok) throw new Error(`${input} did not parse`);
    expect(formatAmount(parsed.value, 8)).toBe(expected);
  });
});
