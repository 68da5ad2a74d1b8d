/**
 * Token amounts: `bigint` base units inside, decimal strings only at the edges.
 * Parsing is string arithmetic; no float ever touches an amount.
 */

/** 0xBitcoin's supply cap in whole tokens: the largest amount start_payment accepts. */
export const MAX_WHOLE_TOKENS = 20_999_984n;

export type ParseAmountResult = { ok: true; value: bigint } | { ok: false };

/**
 * Parses a decimal string of whole tokens into base units, by the original
 * 0xBTCpay's rule: `^[0-9]{1,8}(\.[0-9]{1,decimals})?$`, greater than 0 and
 * at most `maxWholeTokens`. Anything else (numbers, exponents, signs,
 * whitespace, "1.", too many decimals) is rejected.
 */
export function parseAmount(
  input: unknown,
  options: { decimals: number; maxWholeTokens?: bigint },
): ParseAmountResult {
  if (typeof input !== "string") return { ok: false };
  const { decimals } = options;
  const pattern =
    decimals > 0 ? new RegExp(`^([0-9]{1,8})(?:\\.([0-9]{1,${decimals}}))?$`) : /^([0-9]{1,8})$/;
  const match = pattern.exec(input);
  if (!match) return { ok: false };
  const whole = match[1] ?? "0";
  const fraction = (match[2] ?? "").padEnd(decimals, "0");
  const value = BigInt(whole) * 10n ** BigInt(decimals) + BigInt(fraction === "" ? "0" : fraction);
  const max = (options.maxWholeTokens ?? MAX_WHOLE_TOKENS) * 10n ** BigInt(decimals);
  if (value <= 0n || value > max) return { ok: false };
  return { ok: true, value };
}

/**
 * Formats base units as a decimal string of whole tokens without trailing
 * zeros: 29000000n with 8 decimals is "0.29", 100000000n is "1".
 */
export function formatAmount(value: bigint, decimals: number): string {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const unit = 10n ** BigInt(decimals);
  const whole = abs / unit;
  const fraction = (abs % unit).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}
