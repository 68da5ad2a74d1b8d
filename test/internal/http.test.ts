/** The one Retry-After parser, shared by the postback sender and the chain client. */
import { describe, expect, test } from "vitest";
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from "../../src/internal/http.ts";

describe("parseRetryAfter", () => {
  test.each([
    ["2", 2000],
    [" 120 ", 120_000],
    ["0", 0],
    ["Sun, 06 Nov 1994 08:49:37 GMT", 0],
    [new Date(1_000_000_000_000 + 90_000).toUTCString(), 90_000],
    ["99999999", MAX_RETRY_AFTER_MS],
    ["-1", undefined],
    ["1.5", undefined],
    ["soon", undefined],
    ["2030-01-01T00:00:00Z", undefined],
    ["", undefined],
    [null, undefined],
    [undefined, undefined],
  ])("Retry-After %j is %j ms", (value, expected) => {
    expect(parseRetryAfter(value, 1_000_000_000_000)).toBe(expected);
  });

  test("an HTTP-date counts from `now`", async () => {
    expect(
      parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")),
    ).toBe(10_000);
  });

  test("the cap is a day unless the caller names another", async () => {
    expect(MAX_RETRY_AFTER_MS).toBe(86_400_000);
    expect(parseRetryAfter("86401", 0)).toBe(86_400_000);
    expect(parseRetryAfter("86401", 0, 2 ** 31 - 1)).toBe(86_401_000);
    expect(parseRetryAfter("9999999999", 0, 2 ** 31 - 1)).toBe(2 ** 31 - 1);
    expect(parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", 0, 5000)).toBe(5000);
  });
});
