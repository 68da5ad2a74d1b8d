/**
 * The key format: BIP32 extended public keys, parsed watch-only. A leaf
 * module, so the reference deriver (./index.ts) and the fast one (./fast.ts)
 * both build on it without importing each other.
 */
import { HDKey } from "@scure/bip32";
import { KeyError } from "../internal/errors.ts";

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
