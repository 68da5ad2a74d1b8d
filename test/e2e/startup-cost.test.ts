/**
 * Start-up costs what is open, not what is finished: a daemon opened on a
 * database of 100,000 payments, 97 % of them finished (paid with their
 * transfers and delivered postbacks, or expired), written by the bench's
 * fixture, runs a bounded number of statements at start, and none of them
 * reads a row of a finished payment, its transfers or its events. (With the
 * fixture that stored every payment as `waiting`, and a deadline sweep of
 * all that is due in one transaction, start-up read each of them.)
 *
 * Nothing is timed. Every statement the daemon's SQLite connection runs from
 * its open until the first scan and the start-up sweep are done is recorded
 * (startDaemon's `sqlTrace`, better-sqlite3's verbose hook, parameters filled
 * in). Each read is then run again on a connection of the test's own, and its
 * plan asked for: a read may return no finished payment's id, and may not
 * walk the payments, transfers or events table (an index of open payments,
 * a covering index or a lookup by key is fine).
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startDaemon } from "../../src/daemon.ts";
import { seedPayments } from "../bench/seed.ts";
import {
  offlineResolver,
  silentLogger,
  startTestChain,
  type TestChain,
  tempDir,
  testConfig,
  waitFor,
} from "../helpers/index.ts";

let chain: TestChain;
const dir = tempDir();
beforeAll(async () => {
  chain = await startTestChain();
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

/** The statements a daemon runs from its open until its first scan and start-up sweep are done. */
async function startUpStatements(path: string): Promise<string[]> {
  const statements: string[] = [];
  let recording = true;
  const daemon = await startDaemon({
    config: testConfig({ rpcUrl: chain.rpcUrl, token: chain.token }, path),
    logger: silentLogger,
    resolve: offlineResolver,
    sqlTrace: (sql) => {
      if (recording) statements.push(sql);
    },
  });
  try {
    await waitFor(async () => (await daemon.payments.scanPosition()) !== undefined, {
      what: "the first scan",
    });
    // The start-up sweep ran before the first wait for a deadline.
    await waitFor(() => statements.some((s) => s.includes("min(expires_at)")), {
      what: "the start-up sweep",
    });
    recording = false;
  } finally {
    await daemon.stop();
  }
  return statements;
}

/** A statement with its literals taken out: the same query with other values is the same shape. */
const shape = (sql: string) =>
  sql
    .replace(/'(?:[^']|'')*'/g, "?")
    .replace(/\b\d+(?:\.\d+)?\b/g, "?")
    .replace(/\s+/g, " ")
    .trim();

describe("start-up on a database of finished payments", () => {
  test("runs a bounded number of statements, and reads no row of a finished payment", async () => {
    const path = join(dir.path, "startup.sqlite");
    // The bench's fixture (the rss phase's, at a tenth of its size).
    const seeded = seedPayments({
      path,
      counts: { pending: 3_000, paid: 48_500, expired: 48_500 },
    });
    const finished = new Set(seeded.filter((p) => p.kind !== "pending").map((p) => p.id));

    const statements = await startUpStatements(path);
    // A few dozen kinds, each a few times while the daemon polls: a start-up
    // that touched each finished payment would run tens of thousands.
    expect(statements.length).toBeLessThan(500);

    const db = new Database(path, { readonly: true });
    try {
      const reads = [...new Set(statements)].filter((sql) => /^\s*(SELECT|WITH)\b/i.test(sql));
      expect(reads.length).toBeGreaterThan(0);
      const offending: string[] = [];
      for (const sql of reads) {
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
          .map((row) => row.detail)
          .filter((detail) => /^SCAN (payments|transfers|events)\b/.test(detail))
          .filter((detail) => !/USING COVERING INDEX/.test(detail));
        if (plan.length > 0) offending.push(`${shape(sql)}: ${plan.join("; ")}`);
        for (const row of db.prepare(sql).all() as Array<Record<string, unknown>>) {
          const ids = [row.id, row.payment_id].filter((v) => typeof v === "string") as string[];
          const hit = ids.find((id) => finished.has(id));
          if (hit) {
            offending.push(`${shape(sql)}: returned finished payment ${hit}`);
            break;
          }
        }
      }
      expect(offending).toEqual([]);
    } finally {
      db.close();
    }
  });
});
