import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bytesToNumberBE, numberToBytesBE } from "@noble/curves/utils.js";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { describe, expect, test } from "vitest";
import { childPoint, pointToAddress } from "../../src/addresses/fast.ts";
import {
  createAddressDeriver,
  createFastAddressDeriver,
  MAX_DERIVATION_INDEX,
} from "../../src/addresses/index.ts";
import { ANVIL_MNEMONIC, DEV_XPUB } from "../../src/chain/anvil.ts";
import { KeyError } from "../../src/internal/errors.ts";

const root = HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC));
const account0 = root.derive("m/44'/60'/0'/0");
/** A key from another seed entirely, at another depth (an account key, not a chain key). */
const otherAccount = HDKey.fromMasterSeed(new Uint8Array(32).fill(7)).derive("m/44'/60'/5'");

const XPUBS = {
  "m/44'/60'/0'/0 of the test mnemonic": account0.publicExtendedKey,
  "the dev xpub (m/44'/60'/1'/0)": DEV_XPUB,
  "m/44'/60'/5' of another seed": otherAccount.publicExtendedKey,
};

const LARGE_INDEXES = [
  1_000_000,
  123_456_789,
  2 ** 30,
  2 ** 31 - 2,
  MAX_DERIVATION_INDEX, // 2^31 - 1, the last non-hardened index
];

describe("fast watch-only derivation", () => {
  for (const [name, xpub] of Object.entries(XPUBS)) {
    test(`gives exactly the @scure/bip32 addresses for indexes 0..999 and large ones: ${name}`, async () => {
      const reference = createAddressDeriver({ xpub });
      const fast = createFastAddressDeriver({ xpub });
      const indexes = [...Array.from({ length: 1000 }, (_, i) => i), ...LARGE_INDEXES];
      const mismatches = indexes.filter((i) => fast.derive(i) !== reference.derive(i));
      expect(mismatches).toEqual([]);
      // And the derivation does not depend on what was derived before.
      expect(createFastAddressDeriver({ xpub }).derive(MAX_DERIVATION_INDEX)).toBe(
        reference.derive(MAX_DERIVATION_INDEX),
      );
    });
  }

  test("derives anvil's known first accounts", async () => {
    const fast = createFastAddressDeriver({ xpub: account0.publicExtendedKey });
    expect(fast.derive(0)).toBe("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    expect(fast.derive(1)).toBe("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
  });

  test("refuses an xprv with the same error as the reference deriver", async () => {
    expect(() => createFastAddressDeriver({ xpub: account0.privateExtendedKey })).toThrow(KeyError);
    expect(() => createFastAddressDeriver({ xpub: account0.privateExtendedKey })).toThrow(
      /PRIVATE key \(xprv\)/,
    );
  });

  test("refuses out-of-range (hardened, negative, fractional) indexes", async () => {
    const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
    expect(() => fast.derive(2 ** 31)).toThrow("derivation index out of range: 2147483648");
    expect(() => fast.derive(-1)).toThrow("derivation index out of range: -1");
    expect(() => fast.derive(1.5)).toThrow("derivation index out of range: 1.5");
  });
});

describe("BIP32 invalid children", () => {
  const n = secp256k1.Point.Fn.ORDER;
  const parentKey = bytesToNumberBE(account0.privateKey as Uint8Array);
  const parent = secp256k1.Point.fromBytes(account0.publicKey as Uint8Array);

  test("IL ≥ n makes the index unusable: a KeyError, not the next index", async () => {
    for (const il of [n, n + 1n, 2n ** 256n - 1n]) {
      expect(() => childPoint(parent, numberToBytesBE(il, 32), 42)).toThrow(
        "BIP32 child 42 is invalid (IL ≥ n): this index cannot be used",
      );
    }
  });

  test("a child at infinity makes the index unusable: a KeyError", async () => {
    // parent + (n - k)·G = k·G + (n - k)·G = O
    expect(() => childPoint(parent, numberToBytesBE(n - parentKey, 32), 7)).toThrow(
      "BIP32 child 7 is invalid (point at infinity): this index cannot be used",
    );
  });

  test("IL = 0 is valid and gives the parent point, as BIP32 and @scure/bip32 have it", async () => {
    const child = childPoint(parent, new Uint8Array(32), 3);
    expect(pointToAddress(child)).toBe(pointToAddress(parent));
  });

  test("IL = n - 1 is the largest valid tweak", async () => {
    const child = childPoint(parent, numberToBytesBE(n - 1n, 32), 3);
    expect(child.equals(parent.subtract(secp256k1.Point.BASE))).toBe(true);
  });
});
