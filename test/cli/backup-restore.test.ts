/**
 * `0xbtcpay backup` and `0xbtcpay restore` as an operator runs them: the real
 * binary, a daemon child process under start_payment load, real files.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { listMigrations } from "../../src/store/sqlite/index.ts";
import {
  CHILD_PROCESS_TIMEOUT_MS,
  cli,
  type DaemonChild,
  spawnDaemon,
  writeDaemonConfig,
} from "../helpers/cli.ts";
import {
  paymentsOn,
  rpc,
  startPayment,
  startTestChain,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const NEWEST = Math.max(...listMigrations().map((m) => m.version));

let chain: TestChain;
const dir = tempDir();
const cleanups: Array<() => unknown> = [];
beforeAll(async () => {
  chain = await startTestChain();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

let counter = 0;
/** A fresh folder with a config whose database.path is in it (no database yet). */
function setup() {
  const folder = join(dir.path, `case-${++counter}`);
  const dbPath = join(folder, "0xbtcpay.sqlite");
  mkdirSync(folder);
  const config = writeDaemonConfig(folder, { rpcUrl: chain.rpcUrl, token: chain.token, dbPath });
  return { folder, dbPath, config };
}

async function daemonOn(config: string): Promise<DaemonChild> {
  const daemon = await spawnDaemon(config);
  cleanups.push(() => daemon.kill9());
  return daemon;
}

/** `workers` loops of start_payment until `stop.done`; each acknowledged id is pushed to `acked`. */
function startPaymentLoad(
  privateUrl: string,
  acked: string[],
  stop: { done: boolean },
  workers = 8,
) {
  return Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let n = 0; !stop.done; n++) {
        const { json } = await rpc(privateUrl, {
          jsonrpc: "2.0",
          id: n,
          method: "start_payment",
          params: { amount: "0.1", data: { worker, n } },
        });
        if (!json.result) throw new Error(`start_payment failed: ${JSON.stringify(json)}`);
        acked.push(json.result.id);
      }
    }),
  );
}

function read<T>(path: string, run: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return run(db);
  } finally {
    db.close();
  }
}

const ids = (db: Database.Database) =>
  new Set(db.prepare("SELECT id FROM payments").pluck().all() as string[]);
const derivationCounter = (db: Database.Database) =>
  db.prepare("SELECT value FROM counters WHERE name = 'derivation_index'").pluck().get() as number;
const integrity = (db: Database.Database) => db.pragma("integrity_check", { simple: true });

describe("backup and restore", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("a backup taken while start_payment runs under load restores to a database that passes integrity_check and holds every payment acknowledged before the backup began", async () => {
    const { folder, dbPath, config } = setup();
    // Some bulk first, so that the copy takes many steps of the backup API.
    const seeded = await paymentsOn({ path: dbPath, token: chain.token });
    // One transaction (one fsync) for the lot: the seed is not what is tested.
    // (createDurably: creates queued in one turn share one group commit.)
    await Promise.all(
      Array.from({ length: 2000 }, () =>
        seeded.payments.createDurably({
          amount: tokens(1),
          data: "x".repeat(200),
          postbackUrl: null,
        }),
      ),
    );
    seeded.db.close();
    const daemon = await daemonOn(config);

    const acked: string[] = [];
    const stop = { done: false };
    const load = startPaymentLoad(daemon.privateUrl, acked, stop);
    await waitFor(() => acked.length >= 200, {
      timeoutMs: 60_000,
      what: "200 payments under load",
    });
    const ackedBefore = [...acked];
    const backupFile = join(folder, "under-load.sqlite");
    const backup = await cli(["backup", "--to", backupFile, "--config", config]);
    const ackedDuring = acked.length - ackedBefore.length;
    stop.done = true;
    await load;

    expect(backup.stderr).toBe("");
    expect(backup.code).toBe(0);
    const [, inBackup, bytes] =
      /^backup: (?:\S+) \(schema version \d+, (\d+) payments, (\d+) bytes\)\n$/.exec(
        backup.stdout,
      ) ?? [];
    expect(backup.stdout).toBe(
      `backup: ${backupFile} (schema version ${NEWEST}, ${inBackup} payments, ${bytes} bytes)\n`,
    );
    // The daemon kept taking payments while the backup ran.
    expect(ackedDuring).toBeGreaterThan(0);
    // A consistent snapshot: each payment took one index, and the counter is exactly past them.
    read(backupFile, (db) => {
      expect(integrity(db)).toBe("ok");
      expect(db.pragma("journal_mode", { simple: true })).toBe("delete");
      expect(derivationCounter(db)).toBe(Number(inBackup));
      expect(ids(db).size).toBe(Number(inBackup));
    });
    expect(existsSync(`${backupFile}-wal`)).toBe(false);
    expect(readdirSync(folder).filter((name) => name.includes(".tmp-"))).toEqual([]);

    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    const live = read(dbPath, (db) => ({ ids: ids(db), counter: derivationCounter(db) }));
    expect(live.ids.size).toBe(2000 + acked.length);

    const restore = await cli(["restore", "--from", backupFile, "--config", config]);
    expect(restore.stderr).toBe("");
    expect(restore.code).toBe(0);
    const [first, kept, raised] = restore.stdout.split("\n");
    expect(first).toBe(
      `restored ${dbPath} from ${backupFile} (schema version ${NEWEST}, ${inBackup} payments)`,
    );
    const previous = /^the replaced database is kept as (\S+)$/.exec(kept ?? "")?.[1] ?? "";
    expect(previous).toMatch(/0xbtcpay\.sqlite\.before-restore-\d{8}T\d{6}Z$/);
    expect(raised).toBe(
      `the replaced database had handed out deposit addresses up to index ${live.counter - 1}, the backup only up to ${Number(inBackup) - 1}: new payments continue at index ${live.counter}; payments made after the backup are not in it (they are in the replaced database)`,
    );

    read(dbPath, (db) => {
      expect(integrity(db)).toBe("ok");
      const restored = ids(db);
      expect(ackedBefore.filter((id) => !restored.has(id))).toEqual([]);
      expect(restored.size).toBe(Number(inBackup));
      expect(derivationCounter(db)).toBe(live.counter);
    });
    read(previous, (db) => expect(ids(db)).toEqual(live.ids));
    expect(existsSync(`${dbPath}-wal`)).toBe(false);

    // The restored database serves, and never hands out an index twice.
    const again = await daemonOn(config);
    const next = await startPayment(again.privateUrl, { amount: "1" });
    const index = read(
      dbPath,
      (db) =>
        db
          .prepare("SELECT derivation_index FROM payments WHERE id = ?")
          .pluck()
          .get(next.id) as number,
    );
    expect(index).toBe(live.counter);
  });

  test("restore refuses while a daemon runs on the database, and changes nothing", async () => {
    const { folder, dbPath, config } = setup();
    const daemon = await daemonOn(config);
    const before = await startPayment(daemon.privateUrl, { amount: "1" });
    const backupFile = join(folder, "backup.sqlite");
    expect((await cli(["backup", "--to", backupFile, "--config", config])).code).toBe(0);
    await startPayment(daemon.privateUrl, { amount: "2" });

    const restore = await cli(["restore", "--from", backupFile, "--config", config]);
    expect(restore.code).toBe(1);
    expect(restore.stdout).toBe("");
    expect(restore.stderr).toMatch(
      new RegExp(
        `^0xbtcpay: refusing to restore: database ${dbPath.replaceAll(".", "\\.")} is in use by a 0xbtcpay daemon \\(pid ${daemon.child.pid}, started \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\\): stop it first\\n$`,
      ),
    );
    expect(readdirSync(folder).sort()).toEqual(
      [
        "0xbtcpay.sqlite",
        "0xbtcpay.sqlite-shm",
        "0xbtcpay.sqlite-wal",
        "0xbtcpay.sqlite.lock",
        "backup.sqlite",
        "config.json",
      ].sort(),
    );
    const after = await startPayment(daemon.privateUrl, { amount: "3" });
    const { json } = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "list_payments",
      params: {},
    });
    expect(json.result.payments.map((p: { id: string }) => p.id)).toHaveLength(3);
    expect(json.result.payments.at(-1).id).toBe(before.id);
    expect(json.result.payments[0].id).toBe(after.id);
  });

  test("backup refuses an existing file unless --force, and the database itself; restore onto a host with no database yet", async () => {
    const { folder, dbPath, config } = setup();
    const seeded = await paymentsOn({ path: dbPath, token: chain.token });
    const payment = await seeded.payments.create({
      amount: tokens(1),
      data: null,
      postbackUrl: null,
    });
    seeded.db.close();
    const file = join(folder, "b.sqlite");
    writeFileSync(file, "an older backup");

    const refused = await cli(["backup", "--to", file, "--config", config]);
    expect(refused).toEqual({
      code: 1,
      stdout: "",
      stderr: `0xbtcpay: ${file} exists: pass --force to replace it\n`,
    });
    const itself = await Promise.all([
      cli(["backup", "--to", dbPath, "--force", "--config", config]),
      cli(["restore", "--from", dbPath, "--config", config]),
    ]);
    expect(itself.map((result) => result.stderr)).toEqual([
      `0xbtcpay: ${dbPath} is the database itself: back it up to another file\n`,
      `0xbtcpay: ${dbPath} is the database itself: restore from a backup of it\n`,
    ]);
    const forced = await cli(["backup", "--to", file, "--force", "--config", config]);
    expect(forced.code).toBe(0);
    expect(read(file, ids)).toEqual(new Set([payment.id]));

    const elsewhere = setup();
    const restored = await cli(["restore", "--from", file, "--config", elsewhere.config]);
    expect(restored).toEqual({
      code: 0,
      stdout: `restored ${elsewhere.dbPath} from ${file} (schema version ${NEWEST}, 1 payments)\n`,
      stderr: "",
    });
    expect(read(elsewhere.dbPath, ids)).toEqual(new Set([payment.id]));
  });

  test("restore refuses a damaged file, a file that is no database, one from a newer 0xbtcpay and one for another token; the database stays", async () => {
    const { folder, dbPath, config } = setup();
    const seeded = await paymentsOn({ path: dbPath, token: chain.token });
    // (createDurably: creates queued in one turn share one group commit.)
    await Promise.all(
      Array.from({ length: 300 }, () =>
        seeded.payments.createDurably({
          amount: tokens(1),
          data: "y".repeat(500),
          postbackUrl: null,
        }),
      ),
    );
    await seeded.payments.sink.initCursor({ number: -1, hash: null }, 0);
    seeded.db.close();
    const good = join(folder, "good.sqlite");
    expect((await cli(["backup", "--to", good, "--config", config])).code).toBe(0);
    const original = read(dbPath, ids);

    const damaged = join(folder, "damaged.sqlite");
    copyFileSync(good, damaged);
    const fd = openSync(damaged, "r+");
    // Garbage over a page in the middle of the payments table.
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 4096 * 20);
    closeSync(fd);
    const notDb = join(folder, "notes.txt");
    writeFileSync(notDb, "not a database at all, but long enough to have a header. ".repeat(10));
    const newer = join(folder, "newer.sqlite");
    copyFileSync(good, newer);
    const db = new Database(newer);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)").run(
      NEWEST + 1,
      "from_the_future",
    );
    db.close();
    const otherToken = join(folder, "other-token.sqlite");
    copyFileSync(good, otherToken);
    const other = new Database(otherToken);
    other
      .prepare("UPDATE chain_cursor SET token = ?")
      .run("0x00000000000000000000000000000000000000aa");
    other.close();
    const missing = join(folder, "missing.sqlite");

    const outcomes = await Promise.all(
      [damaged, notDb, newer, otherToken, missing].map((from) =>
        cli(["restore", "--from", from, "--config", config]),
      ),
    );
    expect(outcomes.map((o) => o.code)).toEqual([1, 1, 1, 1, 1]);
    expect(outcomes.map((o) => o.stdout)).toEqual(["", "", "", "", ""]);
    expect(outcomes[0]?.stderr).toMatch(
      new RegExp(
        `^0xbtcpay: ${damaged.replaceAll(".", "\\.")} fails PRAGMA integrity_check: .+\\n$`,
      ),
    );
    expect(outcomes.slice(1).map((o) => o.stderr)).toEqual([
      `0xbtcpay: ${notDb} is not a readable SQLite database: file is not a database\n`,
      `0xbtcpay: database ${newer} has schema version ${NEWEST + 1}, newer than this 0xbtcpay knows (${NEWEST}): upgrade 0xbtcpay\n`,
      `0xbtcpay: ${otherToken} was written for chain 31337 token 0x00000000000000000000000000000000000000aa, not chain 31337 token ${chain.token.toLowerCase()} (the config)\n`,
      `0xbtcpay: no backup at ${missing}\n`,
    ]);
    expect(read(dbPath, ids)).toEqual(original);
    expect(readdirSync(folder).filter((name) => name.includes("restore"))).toEqual([]);
  });

  test("a big database: progress lines on stderr from 0% to 100%", async () => {
    const { folder, dbPath, config } = setup();
    const seeded = await paymentsOn({ path: dbPath, token: chain.token });
    for (let i = 0; i < 26; i++) {
      await seeded.payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    }
    // ~110 MB of payment data, written straight into the rows.
    seeded.db.prepare("UPDATE payments SET data = hex(zeroblob(2100000))").run();
    seeded.db.pragma("wal_checkpoint(TRUNCATE)");
    const pages = seeded.db.pragma("page_count", { simple: true }) as number;
    seeded.db.close();

    const file = join(folder, "big-backup.sqlite");
    const backup = await cli(["backup", "--to", file, "--config", config]);
    expect(backup.code).toBe(0);
    const lines = backup.stderr.trimEnd().split("\n");
    const parsed = lines.map((line) => /^backup: (\d+)% \((\d+) of (\d+) pages\)$/.exec(line));
    expect(parsed.every((match) => match !== null)).toBe(true);
    expect(parsed.map((match) => Number(match?.[1]))).toEqual([
      0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100,
    ]);
    expect(new Set(parsed.map((match) => Number(match?.[3])))).toEqual(new Set([pages]));
    expect(lines.at(-1)).toBe(`backup: 100% (${pages} of ${pages} pages)`);
    expect(read(file, integrity)).toBe("ok");
  });
});
