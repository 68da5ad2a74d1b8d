/**
 * Test helpers: real parts only (anvil, SQLite with the real migrations, HTTP
 * servers on 127.0.0.1 port 0).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hex } from "viem";
import { createAddressDeriver } from "../../src/addresses/index.ts";
import {
  ANVIL_ACCOUNTS,
  DEV_XPUB,
  type LocalChain,
  startLocalChain,
} from "../../src/chain/anvil.ts";
import { type ConfigInput, parseConfig } from "../../src/config/index.ts";
import { type Daemon, startDaemon } from "../../src/daemon.ts";
import { type Clock, createClock } from "../../src/internal/clock.ts";
import { createLogger } from "../../src/internal/logger.ts";
import type { StatusView } from "../../src/payments/index.ts";
import { createPayments } from "../../src/payments/index.ts";
import type { Resolver } from "../../src/postbacks/targets.ts";
import { type Db, openDatabase } from "../../src/store/sqlite/index.ts";
import { createSqliteStorage } from "../../src/store/sqlite/storage.ts";
import type { Storage } from "../../src/store/storage.ts";

export const silentLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** Tokens in base units (8 decimals). */
export const tokens = (whole: number | bigint) => BigInt(whole) * 10n ** 8n;

export function tempDir(): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), "0xbtcpay-test-"));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 15_000, intervalMs = 20, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export type TestChain = LocalChain & { token: Hex };

/**
 * anvil (mining only when told) with the test token deployed; with
 * `chainId`, a chain of that id (two chains stand for two networks).
 */
export async function startTestChain(options: { chainId?: number } = {}): Promise<TestChain> {
  const chain = await startLocalChain(options);
  const token = await chain.deployToken();
  return { ...chain, token };
}

/** allowTargets that let postbacks reach receivers on 127.0.0.1 and ::1. */
export const LOOPBACK_TARGETS = ["127.0.0.1/32", "::1/128"];

export function testConfig(
  chain: { rpcUrl: string; token: string },
  /** A SQLite file, or a PostgreSQL database (`{ url }`). */
  dbPath: string | { url: string },
  overrides: {
    chain?: Partial<ConfigInput["chain"]>;
    payments?: ConfigInput["payments"];
    postbacks?: ConfigInput["postbacks"];
    /** Merged over the tests' public port (loopback, port 0, no rate limit). */
    public?: Partial<NonNullable<ConfigInput["public"]>>;
    checkout?: ConfigInput["checkout"];
    ops?: ConfigInput["ops"];
  } = {},
) {
  return parseConfig({
    chain: {
      rpcUrl: chain.rpcUrl,
      chainId: 31337,
      token: chain.token,
      confirmations: 3,
      pollIntervalMs: 50,
      ...overrides.chain,
    },
    wallet: { xpub: DEV_XPUB },
    private: { host: "127.0.0.1", port: 0 },
    // Tests poll status.json every 20 ms: no per-IP rate limit here (test/public/public.test.ts covers it).
    public: {
      host: "127.0.0.1",
      port: 0,
      rateLimit: { windowMs: 60_000, max: 0 },
      ...overrides.public,
    },
    ...(overrides.payments ? { payments: overrides.payments } : {}),
    ...(overrides.checkout ? { checkout: overrides.checkout } : {}),
    // The receivers of the tests listen on loopback, which the SSRF guard refuses by default.
    postbacks: { allowTargets: LOOPBACK_TARGETS, ...overrides.postbacks },
    // Many daemons run at once: each ops listener on a port of its own.
    ops: { host: "127.0.0.1", port: 0, ...overrides.ops },
    database: typeof dbPath === "string" ? { path: dbPath } : { url: dbPath.url },
    log: { level: "silent" },
  });
}

export async function startTestDaemon(
  chain: { rpcUrl: string; token: string },
  dbPath: string | { url: string },
  overrides: Parameters<typeof testConfig>[2] = {},
  options: { clock?: Clock; resolve?: Resolver } = {},
): Promise<Daemon> {
  return startDaemon({
    config: testConfig(chain, dbPath, overrides),
    logger: silentLogger,
    ...(options.clock ? { clock: options.clock } : {}),
    resolve: options.resolve ?? offlineResolver,
  });
}

/**
 * A real clock that tests can move forward (`skewMs`), e.g. past a payment's
 * deadline. Moving it wakes every sleeper whose wake-up time has passed, as
 * if that time had really gone by (the deadline timer fires).
 */
export function skewedClock() {
  let skew = 0;
  const sleepers = new Set<{ until: number; wake(): void }>();
  const now = () => Date.now() + skew;
  return {
    get skewMs() {
      return skew;
    },
    set skewMs(value: number) {
      skew = value;
      for (const sleeper of sleepers) if (sleeper.until <= now()) sleeper.wake();
    },
    now,
    sleep: (ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const sleeper = { until: now() + ms, wake: done };
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          sleepers.delete(sleeper);
          signal?.removeEventListener("abort", done);
          resolve();
        }
        sleepers.add(sleeper);
        signal?.addEventListener("abort", done, { once: true });
      }),
  } satisfies Clock & { skewMs: number };
}

/** A clock that only moves when told to; see {@link manualClock}. */
export type ManualClock = Clock & {
  /** Moves time forward by `ms`; the sleeps that end by then resolve. */
  advance(ms: number): void;
  /** Ms until the soonest sleep ends, as soon as there is a sleep. */
  sleeping(): Promise<number>;
};

/**
 * A clock that only moves when told to. A sleep ends once `advance` reaches
 * its end (or its signal aborts), so a test waits no real time for a delay
 * and can move time exactly as far as the code under test waits.
 */
export function manualClock(start = 1_800_000_000_000): ManualClock {
  let time = start;
  const sleeps = new Set<{ until: number; end(): void }>();
  const waiters: Array<() => void> = [];
  const soonest = () => Math.min(...[...sleeps].map((sleep) => sleep.until)) - time;
  return {
    now: () => time,
    sleep(ms, signal) {
      return new Promise<void>((resolve) => {
        if (signal?.aborted || ms <= 0) return resolve();
        const sleep = { until: time + ms, end };
        function end() {
          sleeps.delete(sleep);
          signal?.removeEventListener("abort", end);
          resolve();
        }
        signal?.addEventListener("abort", end, { once: true });
        sleeps.add(sleep);
        for (const wake of waiters.splice(0)) wake();
      });
    },
    advance(ms) {
      time += ms;
      for (const sleep of [...sleeps]) if (sleep.until <= time) sleep.end();
    },
    sleeping() {
      if (sleeps.size > 0) return Promise.resolve(soonest());
      return new Promise((resolve) => waiters.push(() => resolve(soonest())));
    },
  };
}

/**
 * A skewed clock at least as late as `chain`'s last block (plus 10 s), so
 * blocks mined from now on have times before deadlines set from it.
 */
export async function chainAlignedClock(chain: Pick<LocalChain, "client">) {
  const clock = skewedClock();
  const latest = await chain.client.getBlock({ blockTag: "latest" });
  const chainMs = Number(latest.timestamp) * 1000 + 10_000;
  if (chainMs > clock.now()) clock.skewMs = chainMs - Date.now();
  return clock;
}

/** Sends `value` base units of the test token from `from` to `to` in a new block; its hash. */
export async function payInNewBlock(
  chain: TestChain,
  { to, value, from = ANVIL_ACCOUNTS[1] }: { to: Hex; value: bigint; from?: Hex },
): Promise<Hex> {
  const hash = await chain.submitTransfer({ token: chain.token, from, to, value });
  await chain.mine(1);
  await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  return hash;
}

/** Raw JSON-RPC call to anvil (no client-side caching). */
export async function anvilCall<T = unknown>(
  rpcUrl: string,
  method: string,
  params: unknown[] = [],
): Promise<T> {
  const response = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = (await response.json()) as { result?: T; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

/** POSTs a JSON-RPC body (object or raw string) and returns status and parsed body. */
export async function rpc(url: string, body: unknown) {
  const response = await fetch(`${url}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: tests inspect arbitrary JSON-RPC bodies
  const json: any = JSON.parse(text);
  return { status: response.status, headers: response.headers, text, json };
}

export async function startPayment(
  privateUrl: string,
  params: Record<string, unknown>,
): Promise<{ id: string; amount: string; address: Hex }> {
  const { json } = await rpc(privateUrl, {
    jsonrpc: "2.0",
    id: 1,
    method: "start_payment",
    params,
  });
  if (!json.result) throw new Error(`start_payment failed: ${JSON.stringify(json)}`);
  return json.result;
}

export async function status(publicUrl: string, id: string) {
  const response = await fetch(`${publicUrl}/${id}/status.json`);
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as StatusView,
  };
}

export type ReceivedRequest = {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
};

/** How a test receiver answers: a status, a status with headers, or never ("hang"). */
export type ReceiverAnswer = number | { status: number; headers?: Record<string, string> } | "hang";

/**
 * A real HTTP receiver on 127.0.0.1 that records requests; `answer` picks
 * each answer. `hits` counts requests as soon as their headers arrive.
 */
export async function startReceiver(
  answer: (request: ReceivedRequest) => ReceiverAnswer = () => 200,
) {
  const received: ReceivedRequest[] = [];
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      const request = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body,
        at: Date.now(),
      };
      received.push(request);
      const reply = answer(request);
      if (reply === "hang") return;
      const { status, headers = {} } = typeof reply === "number" ? { status: reply } : reply;
      res.writeHead(status, { "content-type": "text/plain", ...headers }).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/payment_complete`,
    port,
    received,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The default test token address (first deployment by anvil account 0). */
export const TEST_TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3";

/**
 * The real payment logic on a real database (":memory:" by default), with no
 * watcher or servers: for tests that create payments before anything scans.
 */
export async function paymentsOn({
  db,
  path = ":memory:",
  token = TEST_TOKEN,
  ...overrides
}: {
  db?: Db;
  path?: string;
  token?: string;
} & Partial<
  Pick<
    Parameters<typeof createPayments>[0],
    "clock" | "requiredConfirmations" | "expiresAfterSeconds" | "monitorForSeconds"
  >
> = {}) {
  const database = db ?? openDatabase({ path });
  const payments = await paymentsWith({
    storage: createSqliteStorage(database),
    token,
    ...overrides,
  });
  return { db: database, payments };
}

/** The real payment logic on `storage` (either backend), with no watcher or servers. */
export async function paymentsWith({
  storage,
  token = TEST_TOKEN,
  ...overrides
}: {
  storage: Storage;
  token?: string;
} & Partial<
  Pick<
    Parameters<typeof createPayments>[0],
    "clock" | "requiredConfirmations" | "expiresAfterSeconds" | "monitorForSeconds"
  >
>) {
  return await createPayments({
    storage,
    deriver: createAddressDeriver({ xpub: DEV_XPUB }),
    clock: createClock(),
    logger: silentLogger,
    chainId: 31337,
    token,
    decimals: 8,
    requiredConfirmations: 3,
    expiresAfterSeconds: 86_400,
    ...overrides,
  });
}

/** status.json's fields in their order: the original five, then the additive ones. */
export const STATUS_KEYS = [
  "address",
  "amount",
  "seen_at",
  "paid_at",
  "tx_hash",
  "status",
  "paid_amount",
  "confirmations",
  "required_confirmations",
  "expires_at",
  "late",
  "paid_late",
  "late_amount",
  "overpaid_amount",
  "reorged_after_paid",
  "transfers",
];

/**
 * A resolver that asks no DNS server: tests never look names up for real.
 * "localhost" is 127.0.0.1; any other name does not resolve.
 */
export const offlineResolver: Resolver = async (hostname) => {
  if (hostname === "localhost") return [{ address: "127.0.0.1", family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname} (offline test resolver)`), {
    code: "ENOTFOUND",
  });
};

/** A daemon's SQLite connection (the tests that read it run on SQLite). */
export function dbOf(daemon: { db: Db | undefined }): Db {
  if (!daemon.db) throw new Error("this daemon runs on PostgreSQL: it has no SQLite connection");
  return daemon.db;
}
