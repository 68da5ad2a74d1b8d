/**
 * Payment links for wallets: EIP-681 for an ERC-20 transfer, built from
 * bigint base units (never a float, never exponent notation).
 */

/**
 * `ethereum:<token>@<chainId>/transfer?address=<to>&uint256=<amount>`: a
 * call of the token's `transfer(to, amount)` on chain `chainId`. No `value`
 * parameter: no ether moves. `amount` is in base units.
 */
export function erc20TransferUri({
  token,
  chainId,
  to,
  amount,
}: {
  token: string;
  chainId: number;
  to: string;
  amount: bigint;
}): string {
  if (amount < 0n) throw new RangeError("amount must not be negative");
  if (!Number.isSafeInteger(chainId) || chainId <= 0) throw new RangeError("invalid chain id");
  // NOTE: bigint's toString is plain decimal digits at any size.
  return `ethereum:${token}@${chainId}/transfer?address=${to}&uint256=${amount.toString(10)}`;
}

/** Calldata of `transfer(to, amount)`: selector a9059cbb, then both arguments as 32-byte words. */
export function transferCalldata({ to, amount }: { to: string; amount: bigint }): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(to)) throw new RangeError("invalid address");
  if (amount < 0n || amount >= 2n ** 256n) throw new RangeError("amount out of range");
  return `0xa9059cbb${to.slice(2).toLowerCase().padStart(64, "0")}${amount.toString(16).padStart(64, "0")}`;
}
