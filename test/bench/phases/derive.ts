/**
 * derive_per_s: deposit addresses derived per second on one core (this
 * thread), by the daemon's fast deriver the way the daemon derives them: in
 * the address pool's chunks of consecutive indexes. derive_one_per_s: the
 * same deriver one call per address (the on-the-spot fallback when the pool
 * has not reached an index). The baseline of both is @scure/bip32's
 * `deriveChild`, the reference implementation, one address at a time (it has
 * no batch path).
 */
import {
  type AddressDeriver,
  type BatchAddressDeriver,
  createAddressDeriver,
  createFastAddressDeriver,
} from "../../../src/addresses/index.ts";
import { POOL_CHUNK } from "../../../src/addresses/pool.ts";
import { DEV_XPUB } from "../../../src/chain/anvil.ts";
import type { Phase } from "../context.ts";
import { figure, median, progress } from "../report.ts";

/** Derives in chunks like the pool's worker does, for `ms` milliseconds; returns addresses per second. */
function batchRate(deriver: BatchAddressDeriver, start: number, ms: number): number {
  let index = start;
  const began = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    deriver.deriveRange(index, POOL_CHUNK);
    index += POOL_CHUNK;
    elapsed = performance.now() - began;
  }
  return ((index - start) / elapsed) * 1000;
}

/** Derives consecutive indexes from `start` for `ms` milliseconds; returns addresses per second. */
function rate(deriver: AddressDeriver, start: number, ms: number): number {
  let index = start;
  const began = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 16; i++) deriver.derive(index++);
    elapsed = performance.now() - began;
  }
  return ((index - start) / elapsed) * 1000;
}

export const derivePhase: Phase = {
  name: "derive",
  figures: [
    { name: "derive_per_s", unit: "addresses/s" },
    { name: "derive_one_per_s", unit: "addresses/s" },
  ],
  async run({ smoke, emit }) {
    const roundMs = smoke ? 200 : 1500;
    const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
    const reference = createAddressDeriver({ xpub: DEV_XPUB });
    rate(fast, 10_000_000, roundMs / 3); // warm-up (JIT)
    rate(reference, 20_000_000, roundMs / 3);
    batchRate(fast, 30_000_000, roundMs / 3);
    const fastRates: number[] = [];
    const batchRates: number[] = [];
    const referenceRates: number[] = [];
    for (let round = 0; round < 3; round++) {
      fastRates.push(rate(fast, round * 1_000_000, roundMs));
      batchRates.push(batchRate(fast, round * 1_000_000 + 250_000, roundMs));
      referenceRates.push(rate(reference, round * 1_000_000 + 500_000, roundMs / 2));
      progress(
        `derive round ${round + 1}/3: in pool chunks ${batchRates.at(-1)?.toFixed(0)}/s, one by one ${fastRates.at(-1)?.toFixed(0)}/s, @scure/bip32 ${referenceRates.at(-1)?.toFixed(0)}/s`,
      );
    }
    emit(
      figure("derive_per_s", median(batchRates), "addresses/s", {
        baseline: median(referenceRates),
        // NOTE: a ratio to the same run's one-at-a-time derivation: 5,000/s
        // was 4x that baseline (1,251/s) on the machine that set it.
        target: { on: "ratio", op: ">=", limit: 4 },
      }),
    );
    emit(
      figure("derive_one_per_s", median(fastRates), "addresses/s", {
        baseline: median(referenceRates),
      }),
    );
  },
};
