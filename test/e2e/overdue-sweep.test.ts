/**
 * A daemon that comes back to a backlog of overdue payments (it was down
 * for a day during a sale): 20,000 open payments whose deadlines passed,
 * in a real SQLite file with the real migrations. The deadline sweep works
 * them off in batches, one transaction each (payments/deadlines.ts), while
 * status.json and start_payment are answered between two batches, and
 * every payment ends expired with exactly one postback for the shops that
 * opted in to payment.expired, none for the others.
 *
 * Nothing is timed: a second connection to the file reads the committed
 * count of expired payments whenever the daemon's event loop lets it, and
 * each count it sees is a whole number of batches.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startDaemon } from "../../src/daemon.ts";
import { SWEEP_BATCH } from "../../src/payments/deadlines.ts";
import { seedOverdue } from "../bench/seed.ts";
import {
  offlineResolver,
  silentLogger,
  startPayment,
  startReceiver,
  startTestChain,
  status,
  type TestChain,
  tempDir,
  testConfig,
  waitFor,
} from "../helpers/index.ts";

const OVERDUE = 20_000;
/** Every OPTED_IN_EVERY-th payment opted in to payment.expired. */
const OPTED_IN_EVERY = 20;

let chain: TestChain;
const dir = tempDir();
beforeAll(async () => {
  chain = await startTestChain();
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

describe("a backlog of overdue payments at start", () => {
  test("is worked off in batches while both ports answer; each ends expired, one postback per opted-in shop", async () => {
    const receiver = await startReceiver();
    const path = join(dir.path, "overdue.sqlite");
    seedOverdue({ path, total: OVERDUE, postbackUrl: receiver.url, optedInEvery: OPTED_IN_EVERY });
    const observer = new Database(path, { readonly: true });
    const expiredCount = observer
      .prepare("SELECT count(*) FROM payments WHERE status = 'expired'")
      .pluck();
    const seen = new Set<number>();
    const poller = setInterval(() => seen.add(expiredCount.get() as number), 1);
    // Every statement of the daemon's connection: each transaction's re-decided payments are counted.
    const statements: string[] = [];
    const daemon = await startDaemon({
      config: testConfig({ rpcUrl: chain.rpcUrl, token: chain.token }, path),
      logger: silentLogger,
      resolve: offlineResolver,
      sqlTrace: (sql) => statements.push(sql),
    });
    try {
      // The sweep has begun and not ended: ask both ports now.
      await waitFor(() => (expiredCount.get() as number) > 0, { what: "the sweep's first batch" });
      const [view, created] = await Promise.all([
        status(daemon.publicUrl, (OVERDUE - 1).toString(16).padStart(16, "0")),
        startPayment(daemon.privateUrl, { amount: "1" }),
      ]);
      const whenAnswered = expiredCount.get() as number;
      expect(whenAnswered).toBeGreaterThan(0);
      expect(whenAnswered).toBeLessThan(OVERDUE);
      expect(view.status).toBe(200);
      expect(created.id).toMatch(/^[0-9a-f]{16}$/);

      await waitFor(() => expiredCount.get() === OVERDUE, {
        timeoutMs: 60_000,
        what: "every overdue payment expired",
      });
      clearInterval(poller);
      // Payments expired per transaction, from the daemon's own statements:
      // never more than a batch, so many transactions, not one of all.
      const perTransaction: number[] = [];
      let open: number | undefined;
      for (const sql of statements) {
        if (sql.startsWith("BEGIN")) open = 0;
        else if (sql.startsWith("COMMIT") && open !== undefined) {
          if (open > 0) perTransaction.push(open);
          open = undefined;
        } else if (open !== undefined && /^UPDATE payments SET status = 'expired'/.test(sql))
          open++;
      }
      expect(perTransaction.reduce((sum, n) => sum + n, 0)).toBe(OVERDUE);
      expect(Math.max(...perTransaction)).toBeLessThanOrEqual(SWEEP_BATCH);
      expect(perTransaction.length).toBeGreaterThanOrEqual(OVERDUE / SWEEP_BATCH);
      // And the observer saw the sweep between two of them, many times.
      const counts = [...seen].sort((a, b) => a - b);
      expect(counts.filter((n) => n > 0 && n < OVERDUE).length).toBeGreaterThanOrEqual(5);

      const events = observer
        .prepare(
          `SELECT p.postback_events IS NOT NULL AS opted, count(e.id) AS n, min(e.type) AS type
           FROM payments p LEFT JOIN events e ON e.payment_id = p.id
           WHERE p.derivation_index < ? GROUP BY p.id`,
        )
        .all(OVERDUE) as Array<{ opted: number; n: number; type: string | null }>;
      const opted = events.filter((e) => e.opted === 1);
      expect(opted.length).toBe(OVERDUE / OPTED_IN_EVERY);
      expect(opted.every((e) => e.n === 1 && e.type === "payment.expired")).toBe(true);
      expect(events.filter((e) => e.opted === 0 && e.n !== 0)).toEqual([]);
      // The new payment is open, untouched by the sweep.
      expect((await status(daemon.publicUrl, created.id)).body.status).toBe("waiting");
    } finally {
      clearInterval(poller);
      observer.close();
      await daemon.stop();
      await receiver.close();
    }
  });
});
