/**
 * Watch-only deposit addresses: child `i` of the merchant's extended public
 * key, turned into an Ethereum address. No private key is ever accepted.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { HDKey } from "@scure/bip32";
import { KeyError } from "../internal/errors.ts";

export { type BatchAddressDeriver, createFastAddressDeriver } from "./fast.ts";

/** BIP32 non-hardened indexes stop here. */
export const MAX_DERIVATION_INDEX = 0x7fffffff;

export type AddressDeriver = {
  /** Lowercase 0x-address of non-hardened child `index`. */
  derive(index: number): string;
};

/**
 * Parses a BIP32 extended public key (mainnet `xpub` version bytes, which
 * Ethereum wallets export), refusing any key that carries a private part.
 */
export function parseExtendedPublicKey(xpub: string): HDKey {
  const trimmed = xpub.trim();
  if (/^[xtyzuv]prv/i.test(trimmed)) {
    throw new KeyError(
      "this is an extended PRIVATE key (xprv); 0xbtcpay is watch-only: give it the extended PUBLIC key (xpub) of the account, and never put a private key on the server",
    );
  }
  let key: HDKey;
  try {
    key = HDKey.fromExtendedKey(trimmed);
  } catch (cause) {
    throw new KeyError("not a valid BIP32 extended public key (expected xpub…)", { cause });
  }
  if (key.privateKey) {
    throw new KeyError("the extended key carries a private key; give the xpub, not the xprv");
  }
  if (!key.publicKey) throw new KeyError("the extended key has no public key");
  return key;
}

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
