import { describe, expect, test } from "vitest";
import { createAddressDeriver, createFastAddressDeriver } from "../src/addresses/index.ts";
import { createAddressPool } from "../src/addresses/pool.ts";
import { DEV_XPUB } from "../src/chain/anvil.ts";
import { paymentsOn, silentLogger, tokens, waitFor } from "./helpers/index.ts";

describe("address pool (worker thread)", () => {
  test("addresses derived ahead in the worker are exactly the @scure/bip32 ones", async () => {
    const reference = createAddressDeriver({ xpub: DEV_XPUB });
    let fallbacks = 0;
    const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
    const pool = createAddressPool({
      xpub: DEV_XPUB,
      fallback: {
        derive(i) {
          fallbacks++;
          return fast.derive(i);
        },
      },
      logger: silentLogger,
      ahead: 600,
      chunk: 200,
    });
    try {
      pool.prefetch(100);
      // The worker answers asynchronously: wait until its first chunks are in.
      await waitFor(
        () => {
          const before = fallbacks;
          const address = pool.derive(699);
          if (fallbacks !== before) return false;
          return address;
        },
        { what: "pool filled" },
      );
      fallbacks = 0;
      for (let i = 100; i < 699; i++)
        expect(pool.derive(i), `index ${i}`).toBe(reference.derive(i));
      expect(fallbacks).toBe(0);
      // An index the pool never reached is derived on the spot, the same.
      expect(pool.derive(50_000)).toBe(reference.derive(50_000));
      expect(fallbacks).toBe(1);
    } finally {
      await pool.close();
    }
  });
});

describe("address pool lifecycle", () => {
  test("the worker stops when idle (its cache goes with it) and starts again on the next payment", async () => {
    let fallbacks = 0;
    const fast = createFastAddressDeriver({ xpub: DEV_XPUB });
    const pool = createAddressPool({
      xpub: DEV_XPUB,
      fallback: {
        derive(i) {
          fallbacks++;
          return fast.derive(i);
        },
      },
      logger: silentLogger,
      ahead: 100,
      chunk: 100,
      idleMs: 100,
    });
    try {
      // Nothing started before the first payment: everything is derived on the spot.
      pool.derive(0);
      expect(fallbacks).toBe(1);
      pool.prefetch(1);
      await waitFor(() => {
        const before = fallbacks;
        pool.derive(50);
        return fallbacks === before;
      });
      // Idle: the worker stops and its addresses are dropped.
      await waitFor(() => {
        const before = fallbacks;
        pool.derive(60);
        return fallbacks > before;
      });
      pool.prefetch(200);
      await waitFor(() => {
        const before = fallbacks;
        pool.derive(250);
        return fallbacks === before;
      });
    } finally {
      await pool.close();
    }
  });
});

describe("group commit", () => {
  test("concurrent creates commit together; each gets its own index; one failing does not fail the others", async () => {
    const { payments, db } = paymentsOn();
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
    expect(db.prepare("SELECT count(*) AS n FROM payments").get()).toEqual({ n: 50 });
    expect(first.derivation_index).toBe(0);
    // The failed one consumed no index: 0 (first) and 1..49 (the others).
    expect(rows.map((r) => r.derivation_index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 49 }, (_, i) => i + 1),
    );
  });
});
