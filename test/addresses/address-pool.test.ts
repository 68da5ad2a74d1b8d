import { describe, expect, test } from "vitest";
import {
  createAddressDeriver,
  createFastAddressDeriver,
  MAX_DERIVATION_INDEX,
} from "../../src/addresses/index.ts";
import { createAddressPool } from "../../src/addresses/pool.ts";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import { BACKENDS, useBackends } from "../helpers/backends.ts";
import { paymentsWith, silentLogger, tokens, waitFor } from "../helpers/index.ts";

const backends = useBackends();

/** A pool for DEV_XPUB whose on-the-spot deriver counts how often the pool fell back to it. */
function countingPool(options: { ahead: number; chunk: number; idleMs?: number }) {
  const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
  let calls = 0;
  const fallback = {
    derive(index: number) {
      calls++;
      return fast.derive(index);
    },
  };
  const pool = createAddressPool({ xpub: DEV_XPUB, fallback, logger: silentLogger, ...options });
  return { pool, count: () => calls };
}

describe("address pool (worker thread)", () => {
  test("addresses derived ahead in the worker are exactly the @scure/bip32 ones", async () => {
    const reference = createAddressDeriver({ xpub: DEV_XPUB });
    const { pool, count } = countingPool({ ahead: 600, chunk: 200 });
    try {
      pool.prefetch(100);
      // The worker answers asynchronously: wait until its first chunks are in.
      await waitFor(
        () => {
          const before = count();
          const address = pool.derive(699);
          if (count() !== before) return false;
          return address;
        },
        { what: "pool filled" },
      );
      const before = count();
      for (let i = 100; i < 699; i++)
        expect(pool.derive(i), `index ${i}`).toBe(reference.derive(i));
      expect(count()).toBe(before);
      // An index the pool never reached is derived on the spot, the same.
      expect(pool.derive(50_000)).toBe(reference.derive(50_000));
      expect(count()).toBe(before + 1);
    } finally {
      await pool.close();
    }
  });
});

describe("address pool at the end of the index range", () => {
  test("a chunk the worker cannot derive whole still gives the indexes it can; the rest fail on the spot", async () => {
    const reference = createAddressDeriver({ xpub: DEV_XPUB });
    const { pool, count } = countingPool({ ahead: 100, chunk: 100 });
    try {
      // One chunk from MAX - 49: 50 valid indexes, then 50 past the last one.
      pool.prefetch(MAX_DERIVATION_INDEX - 49);
      const address = await waitFor(
        () => {
          const before = count();
          const address = pool.derive(MAX_DERIVATION_INDEX);
          return count() === before && address;
        },
        { what: "the last index from the worker" },
      );
      expect(address).toBe(reference.derive(MAX_DERIVATION_INDEX));
      const before = count();
      expect(() => pool.derive(MAX_DERIVATION_INDEX + 1)).toThrow(
        "derivation index out of range: 2147483648",
      );
      expect(count()).toBe(before + 1);
    } finally {
      await pool.close();
    }
  });
});

describe("address pool lifecycle", () => {
  test("the worker stops when idle (its cache goes with it) and starts again on the next payment", async () => {
    const { pool, count } = countingPool({ ahead: 100, chunk: 100, idleMs: 5000 });
    try {
      // Nothing started before the first payment: everything is derived on the spot.
      pool.derive(0);
      expect(count()).toBe(1);
      pool.prefetch(1);
      await waitFor(() => {
        const before = count();
        pool.derive(50);
        return count() === before;
      });
      // Idle: the worker stops and its addresses are dropped.
      await waitFor(() => {
        const before = count();
        pool.derive(60);
        return count() > before;
      });
      pool.prefetch(200);
      await waitFor(() => {
        const before = count();
        pool.derive(250);
        return count() === before;
      });
    } finally {
      await pool.close();
    }
  });
});

describe.each(BACKENDS)("group commit on %s", (backend) => {
  test("concurrent creates commit together; each gets its own index; one failing does not fail the others", async () => {
    const database = await backends.fresh(backend);
    const payments = await paymentsWith({ storage: await database.storage() });
    const first = await payments.createDurably({
      amount: tokens(1),
      data: null,
      postbackUrl: null,
      orderId: "taken",
    });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        payments.createDurably({
          amount: i === 7 ? tokens(2) : tokens(1),
          data: null,
          postbackUrl: null,
          // One conflicting order id (same id, other amount) among them.
          ...(i === 7 ? { orderId: "taken" } : {}),
        }),
      ),
    );
    expect(results[7]?.status).toBe("rejected");
    const rows = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    expect(rows).toHaveLength(49);
    expect(new Set(rows.map((r) => r.derivation_index)).size).toBe(49);
    expect(await database.query("SELECT count(*) AS n FROM payments")).toEqual([{ n: 50 }]);
    expect(first.derivation_index).toBe(0);
    // The failed one consumed no index: 0 (first) and 1..49 (the others).
    expect(rows.map((r) => r.derivation_index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 49 }, (_, i) => i + 1),
    );
  });
});
