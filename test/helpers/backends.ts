/**
 * The two storage backends, for suites that run on both: a SQLite file in
 * the test file's temp folder, or a fresh database on the test file's
 * throwaway PostgreSQL cluster (started in beforeAll, removed in afterAll).
 * A database gives what a daemon's config takes, a Storage on it, and SQL on
 * it for reading rows the same way on either backend.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, afterEach, beforeAll } from "vitest";
import { type Clock, createClock } from "../../src/internal/clock.ts";
import { openPostgres, ROW_TYPES } from "../../src/store/postgres/index.ts";
import { createPostgresStorage } from "../../src/store/postgres/storage.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import { createSqliteStorage } from "../../src/store/sqlite/storage.ts";
import type { Storage } from "../../src/store/storage.ts";
import { tempDir } from "./index.ts";
import { type PostgresCluster, startPostgres } from "./postgres.ts";

export const BACKENDS = ["sqlite", "postgres"] as const;
export type BackendName = (typeof BACKENDS)[number];

export type TestDatabase = {
  backend: BackendName;
  /** What testConfig, startTestDaemon and writeDaemonConfig take. */
  target: string | { url: string };
  /** Opens a Storage with the real migrations on this database (closed after the test at the latest). */
  storage(options?: { clock?: Clock }): Promise<Storage & { close(): Promise<void> }>;
  /**
   * Runs one statement, `?` for each parameter, and returns its rows; BIGINT
   * columns and counts are numbers on both backends (the store's row types).
   */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
};

/** `close` that does its work on the first call only. */
function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= close();
    return closing;
  };
}

/**
 * Registers the hooks of a test file that runs on both backends: the
 * cluster and temp folder for the file, and the closing of what each test
 * opened. Call it once at the top level of the file.
 */
export function useBackends(): { fresh(backend: BackendName): Promise<TestDatabase> } {
  const dir = tempDir();
  let cluster: PostgresCluster | undefined;
  let databases = 0;
  const closers: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await cluster?.remove();
    dir.cleanup();
  });

  async function freshSqlite(): Promise<TestDatabase> {
    const path = join(dir.path, `db-${++databases}.sqlite`);
    let reader: Database.Database | undefined;
    return {
      backend: "sqlite",
      target: path,
      async storage() {
        const db = openDatabase({ path });
        const close = once(async () => {
          db.close();
        });
        closers.push(close);
        return { ...createSqliteStorage(db), close };
      },
      async query<T>(sql: string, params: unknown[] = []) {
        if (!reader) {
          const opened = new Database(path);
          opened.pragma("busy_timeout = 5000");
          closers.push(() => {
            opened.close();
          });
          reader = opened;
        }
        return reader.prepare(sql).all(...params) as T[];
      },
    };
  }

  async function freshPostgres(): Promise<TestDatabase> {
    if (!cluster) throw new Error("useBackends(): the cluster starts in beforeAll");
    const url = await cluster.createDatabase(`db_${++databases}`);
    let reader: pg.Pool | undefined;
    return {
      backend: "postgres",
      target: { url },
      async storage({ clock = createClock() } = {}) {
        const db = await openPostgres({ url, max: 10 });
        const storage = createPostgresStorage({ db, url, clock, retryIntervalMs: 100 });
        const close = once(() => storage.close());
        closers.push(close);
        return { ...storage, close };
      },
      async query<T>(sql: string, params: unknown[] = []) {
        if (!reader) {
          const opened = new pg.Pool({ connectionString: url, max: 2, types: ROW_TYPES });
          opened.on("error", () => {});
          closers.push(() => opened.end());
          reader = opened;
        }
        let n = 0;
        const text = sql.replaceAll("?", () => `$${++n}`);
        return (await reader.query(text, params)).rows as T[];
      },
    };
  }

  return {
    fresh: (backend) => (backend === "sqlite" ? freshSqlite() : freshPostgres()),
  };
}
