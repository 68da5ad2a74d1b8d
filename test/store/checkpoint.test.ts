import { statSync } from "node:fs";
import { join } from "node:path";
import { setImmediate as yieldLoop } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { createLogger } from "../../src/internal/logger.ts";
import {
  type Checkpointer,
  DEFAULT_AUTOCHECKPOINT,
  SAFETY_NET_AUTOCHECKPOINT,
  startCheckpointer,
} from "../../src/store/sqlite/checkpoint.ts";
import { type Db, openDatabase } from "../../src/store/sqlite/index.ts";
import { silentLogger, tempDir, waitFor } from "../helpers/index.ts";

/** 4,000 commits of 3 pages: about 50 MB through the WAL. */
const COMMITS = 4000;

const autocheckpoint = (db: Db) => db.pragma("wal_autocheckpoint", { simple: true }) as number;
const walBytes = (path: string) => statSync(`${path}-wal`).size;

/** `commits` transactions of a few pages each on the main connection, yielding between them. */
async function write(db: Db, commits: number, onCommit = () => {}): Promise<void> {
  db.exec("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body TEXT)");
  const insert = db.prepare("INSERT INTO filler (body) VALUES (?)");
  for (let i = 0; i < commits; i++) {
    insert.run("x".repeat(10_000)); // three 4 KiB pages, one commit (one fsync) each
    onCommit();
    if (i % 10 === 0) await yieldLoop();
  }
}

describe("WAL checkpoints in a worker thread", () => {
  let dir: ReturnType<typeof tempDir>;
  let path: string;
  let db: Db;
  const checkpointers: Checkpointer[] = [];
  /** A checkpointer on this test's database (closed after the test). */
  const checkpointerFor = (options: Partial<Parameters<typeof startCheckpointer>[0]> = {}) => {
    const checkpointer = startCheckpointer({ db, path, logger: silentLogger, ...options });
    checkpointers.push(checkpointer);
    return checkpointer;
  };

  beforeEach(() => {
    dir = tempDir();
    path = join(dir.path, "db.sqlite");
    db = openDatabase({ path });
  });

  afterEach(async () => {
    for (const checkpointer of checkpointers.splice(0)) {
      await checkpointer.close();
      expect(checkpointer.running()).toBe(false);
      expect(autocheckpoint(db)).toBe(DEFAULT_AUTOCHECKPOINT);
    }
    db.close();
    dir.cleanup();
  });

  test("the main connection never checkpoints, yet the WAL stays small", async () => {
    const checkpointer = checkpointerFor({ intervalMs: 5 });
    expect(checkpointer.running()).toBe(false); // nothing until the first burst
    expect(await checkpointer.touch()).toBe(true);
    expect(autocheckpoint(db)).toBe(SAFETY_NET_AUTOCHECKPOINT);
    await write(db, COMMITS, () => void checkpointer.touch());
    expect(checkpointer.passes()).toBeGreaterThan(0);
    expect(checkpointer.assists()).toBeGreaterThan(0);
    // Without the worker the WAL would hold every page (the safety net is
    // 10,000): the checkpoints let SQLite start it over from the beginning.
    expect(walBytes(path)).toBeLessThan(24 * 1024 * 1024);
    expect(db.prepare("SELECT count(*) FROM filler").pluck().get()).toBe(COMMITS);
  });

  test("the control: with the worker's setting but no worker, the WAL keeps every page", async () => {
    db.pragma(`wal_autocheckpoint = ${SAFETY_NET_AUTOCHECKPOINT}`);
    await write(db, COMMITS);
    expect(walBytes(path)).toBeGreaterThan(36 * 1024 * 1024);
  });

  test("the worker starts with a burst and stops when idle, giving checkpoints back to SQLite", async () => {
    // Longer than the worker takes to start (it loads TypeScript through tsx).
    const checkpointer = checkpointerFor({ idleMs: 1500 });
    expect(autocheckpoint(db)).toBe(DEFAULT_AUTOCHECKPOINT);
    expect(await checkpointer.touch()).toBe(true);
    expect(checkpointer.running()).toBe(true);
    expect(autocheckpoint(db)).toBe(SAFETY_NET_AUTOCHECKPOINT);
    await waitFor(() => !checkpointer.running(), { what: "idle stop" });
    expect(autocheckpoint(db)).toBe(DEFAULT_AUTOCHECKPOINT);
    expect(await checkpointer.touch()).toBe(true);
    expect(autocheckpoint(db)).toBe(SAFETY_NET_AUTOCHECKPOINT);
  });

  test("a worker stopped for idleness before it was ready does not leave touch() waiting", async () => {
    const checkpointer = checkpointerFor({ idleMs: 1 });
    expect(await checkpointer.touch()).toBe(false);
    expect(checkpointer.running()).toBe(false);
    expect(autocheckpoint(db)).toBe(DEFAULT_AUTOCHECKPOINT);
  });

  test("a worker that cannot open the database leaves SQLite's own checkpoints in place", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: "warn",
      destination: { write: (line: string) => lines.push(line) },
    });
    // A directory is not a database: the worker's open fails.
    const checkpointer = checkpointerFor({ path: dir.path, logger });
    expect(await checkpointer.touch()).toBe(false);
    expect(checkpointer.running()).toBe(false);
    expect(await checkpointer.touch()).toBe(false); // not retried
    expect(autocheckpoint(db)).toBe(DEFAULT_AUTOCHECKPOINT);
    expect(lines.join("")).toContain("WAL checkpointer stopped");
  });
});
