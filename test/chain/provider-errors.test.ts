import { describe, expect, test } from "vitest";
import { classifyProviderError, MAX_PROVIDER_RETRY_AFTER_MS } from "../../src/chain/errors.ts";

const rpcError = (code: number, message: string) =>
  Object.assign(new Error("RPC Request failed."), { details: message, code });
/** viem's HttpRequestError for a 429 with this Retry-After. */
const tooManyRequests = (retryAfter: string) =>
  Object.assign(new Error("HTTP request failed."), {
    status: 429,
    headers: new Headers({ "retry-after": retryAfter }),
  });

describe("classifyProviderError", () => {
  test.each([
    [
      "Infura",
      rpcError(
        -32005,
        "query returned more than 10000 results. Try with this block range [0x64, 0xc7].",
      ),
      { kind: "range", suggestedSize: 100 },
    ],
    [
      "Alchemy",
      rpcError(
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x64, 0x95]",
      ),
      { kind: "range", suggestedSize: 50 },
    ],
    [
      "QuickNode",
      rpcError(-32602, "eth_getLogs is limited to a 10,000 range"),
      { kind: "range", suggestedSize: 10_000 },
    ],
    [
      "PublicNode",
      rpcError(-32600, "exceed maximum block range: 50000"),
      { kind: "range", suggestedSize: 50_000 },
    ],
    [
      "llamarpc",
      rpcError(-32000, "query exceeds max results 20000, retry with the range 100-174"),
      { kind: "range", suggestedSize: 75 },
    ],
    ["generic", rpcError(-32000, "block range is too wide"), { kind: "range" }],
    [
      "rate limit -32005",
      rpcError(-32005, "daily request count exceeded, request rate limited"),
      { kind: "rate" },
    ],
    ["other", rpcError(-32000, "execution reverted"), { kind: "other" }],
  ])("%s", (_provider, error, expected) => {
    expect(classifyProviderError(error, { fromBlock: 100 })).toEqual(expected);
  });

  test("a suggestion that starts before our range is anchored at our start", async () => {
    const error = rpcError(
      -32005,
      "query returned more than 10000 results. Try with this block range [0x0, 0xc7].",
    );
    expect(classifyProviderError(error, { fromBlock: 100 })).toEqual({
      kind: "range",
      suggestedSize: 100,
    });
  });

  test("HTTP 429 with Retry-After (seconds and date), found along the cause chain", async () => {
    const wrapped = Object.assign(new Error("eth_getLogs failed"), { cause: tooManyRequests("3") });
    expect(classifyProviderError(wrapped)).toEqual({ kind: "rate", retryAfterMs: 3000 });
    expect(
      classifyProviderError(tooManyRequests("Wed, 21 Oct 2015 07:28:10 GMT"), {
        now: Date.parse("Wed, 21 Oct 2015 07:28:00 GMT"),
      }),
    ).toEqual({ kind: "rate", retryAfterMs: 10_000 });
    expect(classifyProviderError(tooManyRequests("soon"))).toEqual({ kind: "rate" });
  });

  test("a Retry-After is honoured up to the longest timer, not cut at the postbacks' day", async () => {
    expect(classifyProviderError(tooManyRequests("172800"))).toEqual({
      kind: "rate",
      retryAfterMs: 172_800_000,
    });
    expect(MAX_PROVIDER_RETRY_AFTER_MS).toBe(2_147_483_647);
    expect(classifyProviderError(tooManyRequests("9999999999"))).toEqual({
      kind: "rate",
      retryAfterMs: MAX_PROVIDER_RETRY_AFTER_MS,
    });
  });
});
