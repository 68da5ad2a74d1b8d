import { secp256k1 } from "@noble/curves/secp256k1.js";
import { numberToBytesBE } from "@noble/curves/utils.js";
import { HDKey } from "@scure/bip32";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  type AffinePoint,
  addMultipleOfBase,
  addMultiplesOfBase,
  type JacobianPoint,
  toAffineBatch,
} from "../../src/addresses/curve.ts";
import { childJacobian, MANY } from "../../src/addresses/fast.ts";
import {
  createAddressDeriver,
  createFastAddressDeriver,
  MAX_DERIVATION_INDEX,
} from "../../src/addresses/index.ts";
import { DEV_XPUB } from "../../src/chain/anvil.ts";

const { Point } = secp256k1;
const n = Point.Fn.ORDER;

/** noble's k·G + parent, affine. */
function reference(k: bigint, parent: AffinePoint): AffinePoint {
  return Point.BASE.multiply(k).add(Point.fromAffine(parent)).toAffine();
}

function ours(k: bigint, parent: AffinePoint): AffinePoint | undefined {
  const sum = addMultipleOfBase(k, parent);
  return sum && toAffineBatch([sum])[0];
}

const scalar = fc.bigInt({ min: 1n, max: n - 1n });

describe("k·G + parent by table walk (src/addresses/curve.ts)", () => {
  test("equals noble's result for random scalars and parents", async () => {
    fc.assert(
      fc.property(scalar, scalar, (k, parentKey) => {
        const parent = Point.BASE.multiply(parentKey).toAffine();
        const got = ours(k, parent);
        // Left to the caller: k·G and the parent share x (a doubling or infinity).
        if (k === parentKey || k === n - parentKey) expect(got).toBeUndefined();
        else expect(got).toEqual(reference(k, parent));
      }),
      { numRuns: 1000 },
    );
  });

  test("equals noble's result for scalars that stress the signed digits", async () => {
    const parent = Point.BASE.multiply(0xc0ffeen).toAffine();
    const edges = [
      1n,
      2n,
      127n,
      128n, // the largest positive digit
      129n, // the smallest negative digit carries into the next window
      255n,
      256n,
      2n ** 255n,
      2n ** 256n - 2n ** 224n, // every digit 0xff: a carry through all windows
      BigInt(`0x${"80".repeat(32)}`), // every digit exactly half
      BigInt(`0x${"81".repeat(32)}`),
      n - 1n,
      n - 2n,
      n - 129n,
    ];
    for (const k of edges)
      expect(ours(k, parent), `k = ${k.toString(16)}`).toEqual(reference(k, parent));
  });

  test("leaves the doubling and the point at infinity to the caller (undefined)", async () => {
    const k = 0x1234567n;
    const kG = Point.BASE.multiply(k).toAffine();
    // k·G + k·G is a doubling; k·G + (−k·G) is infinity: same x both times.
    expect(addMultipleOfBase(k, kG)).toBeUndefined();
    expect(addMultipleOfBase(k, Point.BASE.multiply(n - k).toAffine())).toBeUndefined();
  });

  test("batch conversion to affine equals one-by-one conversion", async () => {
    const parent = Point.BASE.multiply(99n).toAffine();
    const scalars = Array.from({ length: 50 }, (_, i) => BigInt(i + 1) * 0x1000000000001n);
    const batch = toAffineBatch(scalars.map((k) => addMultipleOfBase(k, parent) as JacobianPoint));
    expect(batch).toEqual(scalars.map((k) => reference(k, parent)));
  });

  test("refuses to return a point that is not on the curve", async () => {
    const g = Point.BASE.toAffine();
    expect(toAffineBatch([{ X: g.x, Y: g.y, Z: 1n }])).toEqual([g]);
    expect(() => toAffineBatch([{ X: g.x, Y: g.y + 1n, Z: 1n }])).toThrow(
      "internal error: derived point is not on secp256k1",
    );
  });
});

describe("k·G + parent for many scalars at once, affine (addMultiplesOfBase)", () => {
  test("equals noble's result for random batches", async () => {
    fc.assert(
      fc.property(fc.array(scalar, { minLength: 1, maxLength: 40 }), scalar, (ks, parentKey) => {
        const parent = Point.BASE.multiply(parentKey).toAffine();
        const got = addMultiplesOfBase(ks, parent);
        ks.forEach((k, i) => {
          if (k === parentKey || k === n - parentKey) expect(got[i]).toBeUndefined();
          else expect(got[i], `k = ${k.toString(16)}`).toEqual(reference(k, parent));
        });
      }),
      { numRuns: 200 },
    );
  });

  test("a doubling or infinity in one entry leaves the others right", async () => {
    const parentKey = 0x1234567n;
    const parent = Point.BASE.multiply(parentKey).toAffine();
    const ks = [1n, parentKey, 2n ** 255n, n - parentKey, n - 1n, 129n];
    const got = addMultiplesOfBase(ks, parent);
    expect(got[1]).toBeUndefined();
    expect(got[3]).toBeUndefined();
    for (const i of [0, 2, 4, 5]) {
      expect(got[i]).toEqual(reference(ks[i] as bigint, parent));
    }
  });

  test("the signed-digit edge scalars", async () => {
    const parent = Point.BASE.multiply(0xc0ffeen).toAffine();
    const ks = [1n, 128n, 129n, 2n ** 256n - 2n ** 224n, BigInt(`0x${"80".repeat(32)}`), n - 1n];
    expect(addMultiplesOfBase(ks, parent)).toEqual(ks.map((k) => reference(k, parent)));
  });
});

describe("child point of the fast deriver (childJacobian)", () => {
  const parentKey = 0xabcdef0123n;
  const parent = Point.BASE.multiply(parentKey);
  const affine = (il: bigint) =>
    toAffineBatch([childJacobian(parent, parent.toAffine(), numberToBytesBE(il, 32), 9)])[0];

  test("a doubling (IL = parent's key) is computed by noble, not refused", async () => {
    expect(affine(parentKey)).toEqual(Point.BASE.multiply(2n * parentKey).toAffine());
  });

  test("IL = 0 is the parent; IL ≥ n and a sum at infinity are invalid children", async () => {
    expect(affine(0n)).toEqual(parent.toAffine());
    expect(() => affine(n)).toThrow("BIP32 child 9 is invalid (IL ≥ n)");
    expect(() => affine(n - parentKey)).toThrow("BIP32 child 9 is invalid (point at infinity)");
  });
});

describe("fast deriver, batched", () => {
  test("deriveRange gives the @scure/bip32 addresses, in order, for any range", async () => {
    const scure = createAddressDeriver({ xpub: DEV_XPUB });
    const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_DERIVATION_INDEX }),
        fc.integer({ min: 0, max: 2 * MANY + 5 }), // both sides of MANY
        (start, length) => {
          const from = Math.min(start, MAX_DERIVATION_INDEX - length + 1);
          const expected = Array.from({ length }, (_, i) => scure.derive(from + i));
          expect(fast.deriveRange(from, length)).toEqual(expected);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("deriveRange refuses a range that leaves the non-hardened indexes", async () => {
    const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
    expect(() => fast.deriveRange(MAX_DERIVATION_INDEX, 2)).toThrow(
      "derivation index out of range: 2147483648",
    );
    expect(() => fast.deriveRange(-1, 2)).toThrow("derivation index out of range: -1");
    expect(() => fast.deriveRange(0, -1)).toThrow("derivation index out of range");
    expect(fast.deriveRange(5, 0)).toEqual([]);
  });

  test("an account-level key (two levels above the address) works the same", async () => {
    const account = HDKey.fromMasterSeed(new Uint8Array(32).fill(1)).derive("m/44'/60'/0'");
    const scure = createAddressDeriver({ xpub: account.publicExtendedKey });
    const fast = createFastAddressDeriver({ xpub: account.publicExtendedKey });
    expect(fast.deriveRange(0, 300)).toEqual(
      Array.from({ length: 300 }, (_, i) => scure.derive(i)),
    );
  });
});
