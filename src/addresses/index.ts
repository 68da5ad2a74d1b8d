/**
 * Watch-only deposit addresses: child `i` of the merchant's extended public
 * key, turned into an Ethereum address. No private key is ever accepted.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { KeyError } from "../internal/errors.ts";
import { type AddressDeriver, MAX_DERIVATION_INDEX, parseExtendedPublicKey } from "./key.ts";

export { type BatchAddressDeriver, createFastAddressDeriver } from "./fast.ts";
export { type AddressDeriver, MAX_DERIVATION_INDEX, parseExtendedPublicKey } from "./key.ts";

/** Ethereum address (lowercase, 0x-prefixed) of a compressed or uncompressed secp256k1 key. */
export function publicKeyToAddress(publicKey: Uint8Array): string {
  const uncompressed =
    publicKey.length === 65 ? publicKey : secp256k1.Point.fromBytes(publicKey).toBytes(false);
  const hash = keccak_256(uncompressed.subarray(1));
  return `0x${bytesToHex(hash.subarray(12))}`;
}

/**
 * Derives deposit addresses from `xpub` with @scure/bip32: the reference
 * implementation. The daemon uses {@link createFastAddressDeriver}, which
 * gives the same addresses faster.
 */
export function createAddressDeriver({ xpub }: { xpub: string }): AddressDeriver {
  const parent = parseExtendedPublicKey(xpub);
  return {
    derive(index) {
      if (!Number.isInteger(index) || index < 0 || index > MAX_DERIVATION_INDEX) {
        throw new KeyError(`derivation index out of range: ${index}`);
      }
      const child = parent.deriveChild(index);
      if (!child.publicKey) throw new KeyError(`no public key at index ${index}`);
      return publicKeyToAddress(child.publicKey);
    },
  };
}
