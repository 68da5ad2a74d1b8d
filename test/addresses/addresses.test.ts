import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { describe, expect, test } from "vitest";
import { createAddressDeriver, parseExtendedPublicKey } from "../../src/addresses/index.ts";
import { ANVIL_ACCOUNTS, ANVIL_MNEMONIC, DEV_XPUB } from "../../src/chain/anvil.ts";
import { KeyError } from "../../src/internal/errors.ts";

const account0 = HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC)).derive("m/44'/60'/0'/0");

describe("watch-only derivation", () => {
  test("the xpub of m/44'/60'/0'/0 of the test mnemonic gives the known addresses", async () => {
    const deriver = createAddressDeriver({ xpub: account0.publicExtendedKey });
    expect(deriver.derive(0)).toBe("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    expect(deriver.derive(1)).toBe("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
  });

  test("derives anvil's ten accounts", async () => {
    const deriver = createAddressDeriver({ xpub: account0.publicExtendedKey });
    expect(ANVIL_ACCOUNTS.map((_, i) => deriver.derive(i))).toEqual([...ANVIL_ACCOUNTS]);
  });

  test("the dev xpub is m/44'/60'/1'/0, disjoint from anvil's funded accounts", async () => {
    const account1 = HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC)).derive(
      "m/44'/60'/1'/0",
    );
    expect(DEV_XPUB).toBe(account1.publicExtendedKey);
    const deriver = createAddressDeriver({ xpub: DEV_XPUB });
    const dev = Array.from({ length: 10 }, (_, i) => deriver.derive(i));
    expect(dev.filter((a) => (ANVIL_ACCOUNTS as readonly string[]).includes(a))).toEqual([]);
  });

  test("refuses an xprv with a clear error", async () => {
    expect(() => createAddressDeriver({ xpub: account0.privateExtendedKey })).toThrow(KeyError);
    expect(() => parseExtendedPublicKey(account0.privateExtendedKey)).toThrow(
      /PRIVATE key \(xprv\)/,
    );
  });

  test("refuses garbage and a tampered checksum", async () => {
    expect(() => parseExtendedPublicKey("hello")).toThrow(/not a valid BIP32 extended public key/);
    const tampered = `${account0.publicExtendedKey.slice(0, -1)}${account0.publicExtendedKey.endsWith("4") ? "5" : "4"}`;
    expect(() => parseExtendedPublicKey(tampered)).toThrow(KeyError);
  });

  test("refuses out-of-range (hardened) indexes", async () => {
    const deriver = createAddressDeriver({ xpub: DEV_XPUB });
    expect(() => deriver.derive(2 ** 31)).toThrow(/out of range/);
    expect(() => deriver.derive(-1)).toThrow(/out of range/);
  });
});
