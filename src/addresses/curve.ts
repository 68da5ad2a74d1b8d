/**
 * `parent + k·G` on secp256k1, the one curve operation BIP32 CKDpub costs per
 * deposit address, several times faster than noble's general-purpose path.
 *
 * Noble builds the table of multiples of G (with its own, audited
 * arithmetic). This file only walks that table: signed fixed-window digits of
 * `k`, one mixed Jacobian + affine addition per non-zero digit (8M + 3S with
 * the reduction specialised to p = 2^256 − 2^32 − 977, where noble's complete
 * projective formula costs 12M and some 20 reduced additions), and one shared
 * inversion for a whole batch of results.
 *
 * Two guards keep a bug here from ever turning into a wrong address:
 * - the short addition formula does not cover two points with the same x (a
 *   doubling or a sum at infinity, never met with a random `k`); that case
 *   returns `undefined` and the caller uses noble instead;
 * - every affine result is checked to lie on the curve (y² = x³ + 7), which an
 *   arithmetic slip would break, before it becomes an address.
 * The tests compare against noble for random and edge scalars and against
 * @scure/bip32 for thousands of indexes.
 */
import { normalizeZ } from "@noble/curves/abstract/curve.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";

const { Point } = secp256k1;

/** The field prime p = 2^256 − 2^32 − 977. */
const P = Point.Fp.ORDER;
const LOW_256 = (1n << 256n) - 1n;
/** 2^256 mod p: the high half of a product folds back in multiplied by this. */
const FOLD = (1n << 256n) - P;
if (FOLD !== 0x1000003d1n) throw new Error("unexpected secp256k1 field prime");

/** a·b mod p for a, b in [0, p). */
function mul(a: bigint, b: bigint): bigint {
  let r = a * b; // < 2^512
  r = (r & LOW_256) + (r >> 256n) * FOLD; // < 2^290
  r = (r & LOW_256) + (r >> 256n) * FOLD; // < 2^256 + 2^67
  return r >= P ? r - P : r;
}

/** a − b mod p for a, b in [0, p). */
function sub(a: bigint, b: bigint): bigint {
  const r = a - b;
  return r < 0n ? r + P : r;
}

/** 2·a mod p for a in [0, p). */
function twice(a: bigint): bigint {
  const r = a + a;
  return r >= P ? r - P : r;
}

export type AffinePoint = { x: bigint; y: bigint };
/** Jacobian coordinates: the affine point is (X/Z², Y/Z³). */
export type JacobianPoint = { X: bigint; Y: bigint; Z: bigint };

/**
 * Window of the table, in bits: 33 windows of 128 points (4,224 points,
 * built in about 50 ms). 10 bits is 10 % faster per multiplication for a
 * table three times as large and slow to build.
 */
const WINDOW = 8;
const WINDOWS = Math.ceil(256 / WINDOW) + 1; // one more for the final carry
const HALF = 2 ** (WINDOW - 1);
const SIZE = 2 ** WINDOW;
const MASK = BigInt(SIZE - 1);
const SHIFT = BigInt(WINDOW);

/**
 * Signed fixed-window digits of `k`: `k = Σ digits[w]·2^(w·WINDOW)`, each in
 * [−2^(W−1)+1, 2^(W−1)], so only half of each window's multiples are stored
 * (a negative digit uses the point's negation and carries one upward).
 */
function signedDigits(k: bigint): Int16Array {
  const digits = new Int16Array(WINDOWS);
  let n = k;
  for (let w = 0; w < WINDOWS; w++) {
    let digit = Number(n & MASK);
    n >>= SHIFT;
    if (digit > HALF) {
      digit -= SIZE;
      n += 1n;
    }
    digits[w] = digit;
  }
  if (n !== 0n) throw new RangeError("scalar out of range for the table");
  return digits;
}

type Table = { xs: bigint[]; ys: bigint[]; negYs: bigint[] };
let table: Table | undefined;

/**
 * Affine multiples `[1..2^(W−1)]·2^(w·W)·G` for every window w, computed and
 * normalised by noble; built on first use and shared by every deriver.
 */
function baseTable(): Table {
  if (table) return table;
  const points: InstanceType<typeof Point>[] = [];
  let base = Point.BASE;
  for (let w = 0; w < WINDOWS; w++) {
    let multiple = base;
    for (let i = 0; i < HALF; i++) {
      points.push(multiple);
      multiple = multiple.add(base);
    }
    base = (points.at(-1) as InstanceType<typeof Point>).double();
  }
  const xs: bigint[] = [];
  const ys: bigint[] = [];
  const negYs: bigint[] = [];
  for (const point of normalizeZ(Point, points)) {
    const { x, y } = point.toAffine();
    xs.push(x);
    ys.push(y);
    negYs.push(P - y);
  }
  table = { xs, ys, negYs };
  return table;
}

/** Builds the shared table now rather than on the first derivation. */
export function prepareBaseTable(): void {
  baseTable();
}

/**
 * `k·G + parent` in Jacobian coordinates, for 0 < k < n and an affine
 * `parent` on the curve. Returns `undefined` when an addition meets two
 * points with the same x (doubling or infinity), which the short formula does
 * not handle: the caller must then compute the point another way.
 */
export function addMultipleOfBase(k: bigint, parent: AffinePoint): JacobianPoint | undefined {
  const { xs, ys, negYs } = baseTable();
  let X = 0n;
  let Y = 0n;
  let Z = 0n;
  let empty = true;
  const digits = signedDigits(k);
  // One step per window, then one for the parent.
  for (let w = 0; w <= WINDOWS; w++) {
    let x2: bigint;
    let y2: bigint;
    if (w < WINDOWS) {
      const digit = digits[w] as number;
      if (digit === 0) continue;
      const at = w * HALF + Math.abs(digit) - 1;
      x2 = xs[at] as bigint;
      y2 = (digit < 0 ? negYs[at] : ys[at]) as bigint;
    } else {
      x2 = parent.x;
      y2 = parent.y;
    }
    if (empty) {
      X = x2;
      Y = y2;
      Z = 1n;
      empty = false;
      continue;
    }
    // Mixed addition (Z2 = 1): U2 = x2·Z², S2 = y2·Z³, H = U2 − X, R = S2 − Y,
    // X3 = R² − H³ − 2·X·H², Y3 = R·(X·H² − X3) − Y·H³, Z3 = Z·H.
    const zz = mul(Z, Z);
    const h = sub(mul(x2, zz), X);
    const r = sub(mul(y2, mul(Z, zz)), Y);
    if (h === 0n) return undefined;
    const hh = mul(h, h);
    const hhh = mul(hh, h);
    const v = mul(X, hh);
    const x3 = sub(sub(mul(r, r), hhh), twice(v));
    Y = sub(mul(r, sub(v, x3)), mul(Y, hhh));
    X = x3;
    Z = mul(Z, h);
  }
  return empty ? undefined : { X, Y, Z };
}

/**
 * Affine coordinates of Jacobian points, with one field inversion for the
 * whole batch. Throws if a result is not on the curve, which only an
 * arithmetic bug could cause: never hand out an address from such a point.
 */
export function toAffineBatch(points: readonly JacobianPoint[]): AffinePoint[] {
  const inverses = Point.Fp.invertBatch(points.map((point) => point.Z));
  return points.map(({ X, Y }, i) => {
    const zInv = inverses[i] as bigint;
    const zInv2 = mul(zInv, zInv);
    const x = mul(X, zInv2);
    const y = mul(Y, mul(zInv2, zInv));
    if (!onCurve(x, y)) throw new Error("internal error: derived point is not on secp256k1");
    return { x, y };
  });
}

/** True if (x, y) satisfies y² = x³ + 7 (mod p). */
function onCurve(x: bigint, y: bigint): boolean {
  let rhs = mul(mul(x, x), x) + 7n;
  if (rhs >= P) rhs -= P;
  return mul(y, y) === rhs;
}

/**
 * `k·G + parent` for many scalars at once, in affine coordinates throughout:
 * each window adds one table point to every accumulator, and the slopes of
 * all those additions share one field inversion (Montgomery's trick), so an
 * addition costs 6 multiplications instead of the 11 of the Jacobian walk.
 * Worth it from a few dozen scalars (the inversion is paid once per window).
 *
 * Entry i is undefined where an addition meets two points with the same x (a
 * doubling or infinity): the caller computes that one another way. Every
 * result is checked to lie on the curve, as in {@link toAffineBatch}.
 */
export function addMultiplesOfBase(
  scalars: readonly bigint[],
  parent: AffinePoint,
): (AffinePoint | undefined)[] {
  const { xs, ys, negYs } = baseTable();
  const count = scalars.length;
  const digits = scalars.map(signedDigits);
  const accX = new Array<bigint>(count).fill(0n);
  const accY = new Array<bigint>(count).fill(0n);
  /** 0: nothing yet, 1: a point, 2: left to the caller. */
  const state = new Uint8Array(count);
  // Per window: which accumulators add which point, and x2 − x1 of each.
  const which: number[] = [];
  const addX: bigint[] = [];
  const addY: bigint[] = [];
  const dx: bigint[] = [];
  const prefix: bigint[] = [];

  for (let w = 0; w <= WINDOWS; w++) {
    which.length = 0;
    addX.length = 0;
    addY.length = 0;
    dx.length = 0;
    for (let i = 0; i < count; i++) {
      if (state[i] === 2) continue;
      let x2: bigint;
      let y2: bigint;
      if (w < WINDOWS) {
        const digit = (digits[i] as Int16Array)[w] as number;
        if (digit === 0) continue;
        const at = w * HALF + Math.abs(digit) - 1;
        x2 = xs[at] as bigint;
        y2 = (digit < 0 ? negYs[at] : ys[at]) as bigint;
      } else {
        x2 = parent.x;
        y2 = parent.y;
      }
      if (state[i] === 0) {
        accX[i] = x2;
        accY[i] = y2;
        state[i] = 1;
        continue;
      }
      const d = sub(x2, accX[i] as bigint);
      if (d === 0n) {
        state[i] = 2;
        continue;
      }
      which.push(i);
      addX.push(x2);
      addY.push(y2);
      dx.push(d);
    }
    const m = dx.length;
    if (m === 0) continue;
    // Montgomery's trick: one inversion for all m denominators.
    prefix.length = m;
    let running = dx[0] as bigint;
    prefix[0] = running;
    for (let j = 1; j < m; j++) {
      running = mul(running, dx[j] as bigint);
      prefix[j] = running;
    }
    let inverse = Point.Fp.inv(running);
    for (let j = m - 1; j >= 0; j--) {
      const inv = j === 0 ? inverse : mul(inverse, prefix[j - 1] as bigint);
      if (j > 0) inverse = mul(inverse, dx[j] as bigint);
      const i = which[j] as number;
      const x1 = accX[i] as bigint;
      const y1 = accY[i] as bigint;
      const x2 = addX[j] as bigint;
      const slope = mul(sub(addY[j] as bigint, y1), inv);
      const x3 = sub(sub(mul(slope, slope), x1), x2);
      accY[i] = sub(mul(slope, sub(x1, x3)), y1);
      accX[i] = x3;
    }
  }

  return scalars.map((_, i) => {
    if (state[i] !== 1) return undefined;
    const x = accX[i] as bigint;
    const y = accY[i] as bigint;
    if (!onCurve(x, y)) throw new Error("internal error: derived point is not on secp256k1");
    return { x, y };
  });
}
