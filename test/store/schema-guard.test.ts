/**
 * The schema-version guard on real SQLite files with the real migrations: a
 * database written by a newer 0xbtcpay is refused by every open (the daemon's
 * and the CLI's), and the CLI never creates or migrates a database.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, test } from "vitest";
import { DEV_XPUB } from "../../src/chain/anvil.ts";
import {
  DatabaseMissingError,
  SchemaTooNewError,
  SchemaTooOldError,
} from "../../src/internal/errors.ts";
import { listMigrations, migrate, openDatabase } from "../../src/store/sqlite/index.ts";
import { cli } from "../helpers/cli.ts";
import { startTestDaemon, TEST_TOKEN, tempDir } from "../helpers/index.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

const migrations = listMigrations();
/** Read from the shipped list: a new migration moves it. */
const NEWEST = Math.max(...migrations.map((m) => m.version));
const ALL_BUT_LAST = migrations.slice(0, -1);
const OLDER = Math.max(...ALL_BUT_LAST.map((m) => m.version));

let counter = 0;
/** A database file with `migrations` applied and, if given, a row for a migration from the future. */
function databaseWith({
  applied = migrations,
  future,
}: {
  applied?: typeof migrations;
  future?: number;
}): string {
  const path = join(dir.path, `db-${++counter}.sqlite`);
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  migrate(db, applied);
  if (future !== undefined) {
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)").run(
      future,
      `${future}_from_the_future`,
    );
  }
  db.close();
  return path;
}

function versionsOf(path: string): number[] {
  const db = new Database(path, { readonly: true });
  const rows = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
  db.close();
  return rows.map((row) => (row as { version: number }).version);
}

/** A config file for the CLI (serve and postbacks), on a chain nobody listens on. */
function configFor(databasePath: string): string {
  const path = join(dir.path, `config-${++counter}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      chain: { rpcUrl: "http://127.0.0.1:1", chainId: 31337, token: TEST_TOKEN },
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: 0 },
      public: { host: "127.0.0.1", port: 0 },
      ops: { port: 0 },
      database: { path: databasePath },
      log: { level: "silent" },
    }),
  );
  return path;
}

const tooNew = (path: string) =>
  `database ${path} has schema version 999, newer than this 0xbtcpay knows (${NEWEST}): upgrade 0xbtcpay`;
const tooOld = (path: string) =>
  `database ${path} has schema version ${OLDER}, older than this 0xbtcpay needs (${NEWEST}): run \`0xbtcpay serve\` once to upgrade it`;
const missing = (path: string) =>
  `no database at ${path}: check database.path in the config, or run \`0xbtcpay serve\` once to create it`;

describe("schema version guard", () => {
  test("every open refuses a database with a migration newer than this build's, and adds none of ours", async () => {
    // One shipped migration missing too: the refusal must come before migrating.
    const path = databaseWith({ applied: ALL_BUT_LAST, future: 999 });
    for (const options of [{}, { migrate: false }, { readonly: true }]) {
      let thrown: unknown;
      try {
        openDatabase({ path, ...options });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(SchemaTooNewError);
      expect(thrown).toMatchObject({
        code: "SCHEMA_TOO_NEW",
        version: 999,
        newest: NEWEST,
        message: tooNew(path),
      });
    }
    expect(versionsOf(path)).toEqual([...ALL_BUT_LAST.map((m) => m.version), 999]);
  });

  test("the daemon refuses to start on it", async () => {
    const path = databaseWith({ future: 999 });
    const started = startTestDaemon({ rpcUrl: "http://127.0.0.1:1", token: TEST_TOKEN }, path);
    await expect(started).rejects.toThrow(SchemaTooNewError);
    await expect(started).rejects.toThrow(tooNew(path));
  });

  test("an open that does not migrate refuses an older schema and changes nothing", async () => {
    const path = databaseWith({ applied: ALL_BUT_LAST });
    expect(() => openDatabase({ path, migrate: false })).toThrow(SchemaTooOldError);
    expect(() => openDatabase({ path, readonly: true })).toThrow(tooOld(path));
    expect(versionsOf(path)).toEqual(ALL_BUT_LAST.map((m) => m.version));
    // The daemon's open upgrades it; after that the same open is fine.
    openDatabase({ path }).close();
    openDatabase({ path, migrate: false }).close();
    expect(versionsOf(path)).toEqual(migrations.map((m) => m.version));
  });

  test("an open that does not migrate refuses a missing file and creates none", async () => {
    const path = join(dir.path, "never-created.sqlite");
    expect(() => openDatabase({ path, migrate: false })).toThrow(DatabaseMissingError);
    expect(() => openDatabase({ path, readonly: true })).toThrow(missing(path));
    expect(existsSync(path)).toBe(false);
  });

  test("serve refuses a newer database: its message on stderr, exit code 1", async () => {
    const path = databaseWith({ future: 999 });
    const { code, stdout, stderr } = await cli(["serve", "--config", configFor(path)]);
    expect({ code, stdout, stderr }).toEqual({
      code: 1,
      stdout: "",
      stderr: `0xbtcpay: ${tooNew(path)}\n`,
    });
  });

  test("postbacks list and retry refuse a newer database with the same message", async () => {
    const path = databaseWith({ future: 999 });
    const config = configFor(path);
    for (const args of [["list"], ["retry", "0123456789abcdef"]]) {
      const result = await cli(["postbacks", ...args, "--config", config]);
      expect(result).toEqual({ code: 1, stdout: "", stderr: `0xbtcpay: ${tooNew(path)}\n` });
    }
    expect(versionsOf(path)).toEqual([...migrations.map((m) => m.version), 999]);
  });

  test("postbacks list and retry refuse an older database and leave its schema as it was", async () => {
    const path = databaseWith({ applied: ALL_BUT_LAST });
    const config = configFor(path);
    for (const args of [["list"], ["retry", "0123456789abcdef"]]) {
      const result = await cli(["postbacks", ...args, "--config", config]);
      expect(result).toEqual({ code: 1, stdout: "", stderr: `0xbtcpay: ${tooOld(path)}\n` });
    }
    expect(versionsOf(path)).toEqual(ALL_BUT_LAST.map((m) => m.version));
  });

  test("postbacks list and retry refuse a missing database and create no file", async () => {
    const path = join(dir.path, "no-such.sqlite");
    const config = configFor(path);
    for (const args of [["list"], ["retry", "0123456789abcdef"]]) {
      const result = await cli(["postbacks", ...args, "--config", config]);
      expect(result).toEqual({ code: 1, stdout: "", stderr: `0xbtcpay: ${missing(path)}\n` });
    }
    for (const suffix of ["", "-wal", "-shm"]) expect(existsSync(`${path}${suffix}`)).toBe(false);
  });

  test("postbacks list reads a database at this build's version", async () => {
    const path = databaseWith({});
    const result = await cli(["postbacks", "list", "--config", configFor(path)]);
    expect(result).toEqual({
      code: 0,
      stdout:
        "event_id\tpayment_id\tevent\tstate\tattempts\tlast_status\tnext_attempt_at\tdelivered_at\tlast_error\n",
      stderr: "",
    });
  });
});
