/**
 * `0xbtcpay status` and `0xbtcpay doctor` as the operator runs them: the
 * real binary against a real anvil, real databases and a daemon child.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { createAddressDeriver } from "../../src/addresses/index.ts";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { listMigrations, migrate } from "../../src/store/sqlite/index.ts";
import { COUNT_BY_STATUS_SQL } from "../../src/store/sqlite/overview.ts";
import {
  CHILD_PROCESS_TIMEOUT_MS,
  cli,
  type DaemonChild,
  spawnDaemon,
  writeDaemonConfig,
} from "../helpers/cli.ts";
import {
  anvilCall,
  payInNewBlock,
  paymentsOn,
  startPayment,
  startReceiver,
  startTestChain,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const NEWEST = Math.max(...listMigrations().map((m) => m.version));
const deriver = createAddressDeriver({ xpub: DEV_XPUB });

let chain: TestChain;
const dir = tempDir();
const cleanups: Array<() => unknown> = [];
beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, ANVIL_ACCOUNTS[1], tokens(1_000));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

let counter = 0;
const fresh = (name: string) => join(dir.path, `${++counter}-${name}`);

/** A port on 127.0.0.1 that was free a moment ago and is closed now. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A server holding a port on 127.0.0.1 until the test ends. */
async function takenPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

function doctorConfig(
  overrides: {
    rpcUrl?: string;
    chainId?: number;
    decimals?: number;
    symbol?: string;
    privatePort?: number;
    dbPath?: string;
  } = {},
) {
  const path = fresh("doctor.json");
  const dbPath = overrides.dbPath ?? fresh("doctor.sqlite");
  writeFileSync(
    path,
    JSON.stringify({
      chain: {
        rpcUrl: overrides.rpcUrl ?? chain.rpcUrl,
        chainId: overrides.chainId ?? 31337,
        token: chain.token,
        ...(overrides.decimals === undefined ? {} : { decimals: overrides.decimals }),
        ...(overrides.symbol === undefined ? {} : { symbol: overrides.symbol }),
      },
      wallet: { xpub: DEV_XPUB },
      private: { host: "127.0.0.1", port: overrides.privatePort ?? 0 },
      public: { host: "127.0.0.1", port: 0 },
      database: { path: dbPath },
    }),
  );
  return { path, dbPath };
}

const XPUB_LINE = `ok    xpub         derives index 0 ${deriver.derive(0)}, index 1 ${deriver.derive(1)}`;
const PUBLIC_LINE = "ok    public port  127.0.0.1:0: the system picks a free port";

describe("doctor", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("a good config against anvil: one ok line per check, exit code 0", async () => {
    const port = await closedPort();
    const config = doctorConfig({ privatePort: port });
    const head = Number(await anvilCall<string>(chain.rpcUrl, "eth_blockNumber"));
    const { code, stdout, stderr } = await cli(["doctor", "--config", config.path]);
    expect(stderr).toBe("");
    expect(stdout.split("\n")).toEqual([
      `ok    config       ${config.path} is valid`,
      `ok    rpc          ${new URL(chain.rpcUrl).origin} answers, head block ${head}`,
      "ok    chain id     31337, as configured",
      `ok    token        ${chain.token.toLowerCase()} answers decimals() 8 and symbol() "0xBTC", as configured`,
      XPUB_LINE,
      `ok    private port 127.0.0.1:${port} is free`,
      PUBLIC_LINE,
      `ok    database     ${config.dbPath} does not exist yet: \`serve\` creates it (schema version ${NEWEST})`,
      "",
    ]);
    expect(code).toBe(0);
  });

  test("the RPC on a closed 127.0.0.1 port: rpc, chain id and token FAIL, exit code 1", async () => {
    const port = await closedPort();
    const config = doctorConfig({ rpcUrl: `http://127.0.0.1:${port}/v3/api-key-in-the-path` });
    const { code, stdout } = await cli(["doctor", "--config", config.path]);
    expect(code).toBe(1);
    expect(stdout.split("\n").slice(1, 5)).toEqual([
      `FAIL  rpc          http://127.0.0.1:${port} did not answer: eth_blockNumber failed: HTTP request failed (ECONNREFUSED)`,
      "FAIL  chain id     not checked: the RPC endpoint did not answer",
      "FAIL  token        not checked: the RPC endpoint did not answer",
      XPUB_LINE,
    ]);
    expect(stdout).not.toContain("api-key-in-the-path");
  });

  test("wrong chain id; token decimals and symbol unlike the config; a port in use; databases from a newer 0xbtcpay and for another token", async () => {
    const wrongChain = await cli(["doctor", "--config", doctorConfig({ chainId: 1 }).path]);
    expect(wrongChain.code).toBe(1);
    expect(wrongChain.stdout.split("\n").slice(2, 4)).toEqual([
      "FAIL  chain id     the RPC endpoint serves chain 31337, the config says chain.chainId 1",
      "FAIL  token        not checked: wrong chain",
    ]);

    const port = await takenPort();
    const newer = fresh("newer.sqlite");
    const db = new Database(newer);
    db.pragma("journal_mode = WAL");
    migrate(db);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)").run(
      NEWEST + 1,
      "from_the_future",
    );
    db.close();
    const token = await cli([
      "doctor",
      "--config",
      doctorConfig({ decimals: 18, symbol: "XBTC", privatePort: port, dbPath: newer }).path,
    ]);
    expect(token.code).toBe(1);
    const lines = token.stdout.split("\n");
    expect(lines[3]).toBe(
      `FAIL  token        ${chain.token.toLowerCase()}: decimals() is 8, the config says chain.decimals 18; symbol() is "0xBTC", the config says chain.symbol "XBTC"`,
    );
    expect(lines[5]).toBe(`FAIL  private port 127.0.0.1:${port} is in use`);
    expect(lines[7]).toBe(
      `FAIL  database     ${newer} cannot be opened: database ${newer} has schema version ${NEWEST + 1}, newer than this 0xbtcpay knows (${NEWEST}): upgrade 0xbtcpay`,
    );

    const otherToken = fresh("other-token.sqlite");
    const { db: other, payments } = await paymentsOn({
      path: otherToken,
      token: "0x00000000000000000000000000000000000000aa",
    });
    await payments.sink.initCursor({ number: -1, hash: null }, 0);
    other.close();
    const mismatch = await cli(["doctor", "--config", doctorConfig({ dbPath: otherToken }).path]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stdout.split("\n")[7]).toBe(
      `FAIL  database     ${otherToken} was written for chain 31337 token 0x00000000000000000000000000000000000000aa, the config says chain 31337 token ${chain.token.toLowerCase()}: use a new database.path`,
    );
  });

  test("an invalid config is one FAIL line with each problem under it", async () => {
    const path = fresh("bad.json");
    writeFileSync(path, JSON.stringify({ chain: { rpcUrl: "ftp://x" }, database: { path: "x" } }));
    const { code, stdout } = await cli(["doctor", "--config", path]);
    expect(code).toBe(1);
    expect(stdout).toBe(
      [
        `FAIL  config       ${path} is invalid:`,
        "                     - chain.rpcUrl: expected an http(s) URL",
        "                     - chain.chainId: is required",
        "                     - wallet: is required",
        "",
      ].join("\n"),
    );
  });
});

describe("status", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("a database before its first scan, no daemon: no cursor, payments by status, an empty queue", async () => {
    const dbPath = fresh("quiet.sqlite");
    const { db, payments } = await paymentsOn({ path: dbPath, token: chain.token });
    await payments.create({ amount: tokens(1), data: null, postbackUrl: null });
    const cancelled = await payments.create({ amount: tokens(2), data: null, postbackUrl: null });
    await payments.cancel(cancelled.id);
    db.close();
    const config = writeDaemonConfig(dir.path, {
      rpcUrl: chain.rpcUrl,
      token: chain.token,
      dbPath,
      name: `${++counter}-quiet.json`,
    });

    const text = await cli(["status", "--config", config]);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(
      [
        `database   ${dbPath} (schema ${NEWEST})`,
        "daemon     not running",
        "scan       not started: the daemon sets the cursor at its first start",
        "payments   waiting 1, seen 0, paid 0, expired 0, cancelled 1",
        "postbacks  0 pending, 0 failed",
        "last error none",
        "",
      ].join("\n"),
    );
    const json = await cli(["status", "--json", "--config", config]);
    expect(JSON.parse(json.stdout)).toEqual({
      database: { path: dbPath, schema_version: NEWEST, daemon: null },
      scan: null,
      payments: { waiting: 1, seen: 0, paid: 0, expired: 0, cancelled: 1 },
      postbacks: {
        pending: 0,
        failed: 0,
        oldest_undelivered_at: null,
        oldest_undelivered_age_seconds: null,
        last_error: null,
      },
    });
  });

  test("while the daemon runs: its pid, the stored cursor and head, a paid payment, a failing postback", async () => {
    const shop = await startReceiver(() => 500);
    cleanups.push(() => shop.close());
    const dbPath = fresh("busy.sqlite");
    const config = writeDaemonConfig(dir.path, {
      rpcUrl: chain.rpcUrl,
      token: chain.token,
      dbPath,
      name: `${++counter}-busy.json`,
      postbacks: { retrySchedule: ["1h"] },
    });
    const daemon: DaemonChild = await spawnDaemon(config);
    cleanups.push(() => daemon.kill9());
    const paid = await startPayment(daemon.privateUrl, { amount: "1", postback_url: shop.url });
    await startPayment(daemon.privateUrl, { amount: "2" });
    await payInNewBlock(chain, { to: paid.address, value: tokens(1) });
    const reader = new Database(dbPath, { readonly: true });
    cleanups.push(() => reader.close());
    const event = await waitFor(
      () => {
        const row = reader
          .prepare("SELECT id, attempts, created_at FROM events WHERE payment_id = ?")
          .get(paid.id) as { id: string; attempts: number; created_at: number } | undefined;
        return row?.attempts === 1 ? row : undefined;
      },
      { what: "the postback's first attempt recorded" },
    );
    const cursor = reader.prepare("SELECT block_number, head_number FROM chain_cursor").get() as {
      block_number: number;
      head_number: number;
    };

    const json = await cli(["status", "--json", "--config", config]);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report.database).toEqual({
      path: dbPath,
      schema_version: NEWEST,
      daemon: { pid: daemon.child.pid, started_at: expect.any(Number) },
    });
    // No new block was mined since: the stored cursor and head stay put.
    expect(report.scan).toMatchObject({
      block_number: cursor.block_number,
      head: cursor.head_number,
      blocks_behind: cursor.head_number - cursor.block_number,
    });
    expect(report.payments).toEqual({ waiting: 1, seen: 0, paid: 1, expired: 0, cancelled: 0 });
    expect(report.postbacks).toMatchObject({
      pending: 1,
      failed: 0,
      oldest_undelivered_at: event.created_at,
      last_error: { event_id: event.id, payment_id: paid.id, status: 500, error: "HTTP 500" },
    });

    const text = await cli(["status", "--config", config]);
    const lines = text.stdout.split("\n");
    expect(lines[1]).toMatch(
      new RegExp(`^daemon     running, pid ${daemon.child.pid}, started \\d{4}-\\d\\d-\\d\\dT`),
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^scan       block ${cursor.block_number} of head ${cursor.head_number}, ${cursor.head_number - cursor.block_number} behind; recorded \\d+ s ago \\(\\d{4}-`,
      ),
    );
    expect(lines[3]).toBe("payments   waiting 1, seen 0, paid 1, expired 0, cancelled 0");
    expect(lines[4]).toMatch(/^postbacks {2}1 pending, 0 failed; oldest undelivered \d+ s old \(/);
    expect(lines[5]).toMatch(
      new RegExp(
        `^last error \\S+ \\(\\d+ s ago\\) event ${event.id} of payment ${paid.id}: HTTP 500$`,
      ),
    );
  });

  test("payments by status are counted on the payments_by_status index, not by a table scan", async () => {
    const { db } = await paymentsOn();
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${COUNT_BY_STATUS_SQL}`)
      .all("paid")
      .map((row) => (row as { detail: string }).detail);
    db.close();
    expect(plan).toEqual(["SEARCH payments USING COVERING INDEX payments_by_status (status=?)"]);
  });
});

describe("the operator's commands", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test.each([["status"], ["doctor"], ["backup"], ["restore"], ["rescan"]])(
    "%s --help describes the command and gives an example",
    async (command) => {
      const { code, stdout } = await cli([command, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: 0xbtcpay ${command} `));
      expect(stdout).toMatch(new RegExp(`\\n  0xbtcpay ${command} --`));
    },
  );
});
