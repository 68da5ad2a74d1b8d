/**
 * Postbacks through the whole daemon on a real anvil chain: kill -9 of a
 * child-process daemon, and the operator's tools (`postbacks list/retry`
 * CLI, `resend_postback` JSON-RPC) on delivered and failed events.
 */
import { writeFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ANVIL_ACCOUNTS, DEV_XPUB } from "../../src/chain/anvil.ts";
import { parseConfig } from "../../src/config/index.ts";
import { startDaemon } from "../../src/daemon.ts";
import type { Resolver } from "../../src/postbacks/targets.ts";
import { openDatabase } from "../../src/store/sqlite/index.ts";
import type { EventRow } from "../../src/store/storage.ts";
import { cli, spawnDaemon as spawnDaemonChild } from "../helpers/cli.ts";
import {
  LOOPBACK_TARGETS,
  type ReceivedRequest,
  rpc,
  silentLogger,
  startPayment,
  startReceiver,
  startTestChain,
  type TestChain,
  tempDir,
  tokens,
  waitFor,
} from "../helpers/index.ts";

const PAYER = ANVIL_ACCOUNTS[1];
const SECRET = `whsec_${Buffer.alloc(32, 0x42).toString("base64")}`;

let chain: TestChain;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(chain.token, PAYER, tokens(1_000));
});
afterAll(async () => {
  await chain?.stop();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function headersOf(request: ReceivedRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers as IncomingHttpHeaders)) {
    if (typeof value === "string") out[name] = value;
  }
  return out;
}

/** A config file for the daemon and the CLI, on the test chain. */
function writeConfig(postbacks: Record<string, unknown>) {
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  const raw = {
    chain: {
      rpcUrl: chain.rpcUrl,
      chainId: 31337,
      token: chain.token,
      confirmations: 1,
      pollIntervalMs: 50,
    },
    wallet: { xpub: DEV_XPUB },
    private: { host: "127.0.0.1", port: 0 },
    public: { host: "127.0.0.1", port: 0 },
    ops: { port: 0 },
    postbacks: { secret: SECRET, allowTargets: LOOPBACK_TARGETS, ...postbacks },
    database: { path: join(dir.path, "daemon.sqlite") },
    log: { level: "info" },
  };
  const path = join(dir.path, "config.json");
  writeFileSync(path, JSON.stringify(raw));
  return { path, raw, dbPath: raw.database.path };
}

async function pay(to: Hex, value: bigint) {
  const hash = await chain.submitTransfer({ token: chain.token, from: PAYER, to, value });
  await chain.mine(1);
  await chain.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
}

/** The events of a database another process writes (WAL: readers do not block it). */
function eventsIn(dbPath: string, paymentId: string): EventRow[] {
  const db = openDatabase({ path: dbPath, readonly: true });
  try {
    return db
      .prepare("SELECT * FROM events WHERE payment_id = ? ORDER BY rowid")
      .all(paymentId) as EventRow[];
  } finally {
    db.close();
  }
}

/** `0xbtcpay serve` as a child process, killed after the test. */
async function spawnDaemon(configPath: string) {
  const daemon = await spawnDaemonChild(configPath);
  cleanups.push(daemon.kill9);
  return daemon;
}

describe("postbacks survive kill -9", () => {
  test("a pending event with a retry scheduled is delivered after a kill -9 and restart; a delivered one is never sent again", async () => {
    let answered = 0;
    const shop = await startReceiver(() => (answered++ === 0 ? 500 : 200));
    cleanups.push(shop.close);
    const config = writeConfig({ retrySchedule: ["3s"] });

    const first = await spawnDaemon(config.path);
    const payment = await startPayment(first.privateUrl, {
      amount: "1",
      data: { order: "kill-9" },
      postback_url: shop.url,
    });
    await pay(payment.address, tokens(1));
    const [failedOnce] = await waitFor(
      () => {
        const events = eventsIn(config.dbPath, payment.id);
        return events[0]?.attempts === 1 ? events : undefined;
      },
      { what: "the first attempt recorded" },
    );
    expect(failedOnce).toMatchObject({ state: "pending", last_status: 500 });
    expect(failedOnce?.next_attempt_at).toBeGreaterThan(Date.now());
    await first.kill9();
    expect(shop.hits()).toBe(1);

    const second = await spawnDaemon(config.path);
    const [delivered] = await waitFor(
      () => {
        const events = eventsIn(config.dbPath, payment.id);
        return events[0]?.state === "delivered" ? events : undefined;
      },
      { what: "delivered after the restart" },
    );
    expect(delivered).toMatchObject({ attempts: 2, last_status: 200 });
    const eventId = delivered?.id;
    expect(shop.received.map((r) => r.headers["webhook-id"])).toEqual([eventId, eventId]);
    await second.kill9();

    // A third life: a new payment's postback arrives, the delivered one does not come again.
    const third = await spawnDaemon(config.path);
    const other = await startPayment(third.privateUrl, { amount: "2", postback_url: shop.url });
    await pay(other.address, tokens(2));
    await waitFor(() => eventsIn(config.dbPath, other.id)[0]?.state === "delivered", {
      what: "the second payment's postback",
    });
    const ids = shop.received.map((r) => r.headers["webhook-id"]);
    expect(ids.filter((id) => id === eventId)).toHaveLength(2);
    expect(ids).toHaveLength(3);
    for (const request of shop.received) {
      expect(new Webhook(SECRET).verify(request.body, headersOf(request))).toBeTruthy();
    }
  });
});

describe("redelivery by the operator", () => {
  test("postbacks list/retry (CLI, while the daemon runs) and resend_postback work on delivered and failed events", async () => {
    let gone = true;
    const shop = await startReceiver((request) =>
      gone && request.url.includes("gone") ? 410 : 200,
    );
    cleanups.push(shop.close);
    const config = writeConfig({ retrySchedule: [] });
    // Names resolve only through this: shop.test is the loopback receiver.
    const resolve: Resolver = async (hostname) => {
      if (hostname !== "shop.test") throw new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      return [{ address: "127.0.0.1", family: 4 }];
    };
    const daemon = await startDaemon({
      config: parseConfig(config.raw),
      logger: silentLogger,
      resolve,
    });
    cleanups.push(() => daemon.stop());

    const blocked = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 9,
      method: "start_payment",
      params: { amount: "1", postback_url: "http://10.0.0.1/payment_complete" },
    });
    expect(blocked.json.error).toEqual({
      code: -32602,
      message: "Invalid params: invalid postback URL: target not allowed",
    });

    const base = `http://shop.test:${shop.port}`;
    const ok = await startPayment(daemon.privateUrl, { amount: "1", postback_url: `${base}/ok` });
    const cliFailed = await startPayment(daemon.privateUrl, {
      amount: "1",
      postback_url: `${base}/gone-1`,
    });
    const rpcFailed = await startPayment(daemon.privateUrl, {
      amount: "1",
      postback_url: `${base}/gone-2`,
    });
    for (const p of [ok, cliFailed, rpcFailed]) await pay(p.address, tokens(1));
    const eventOf = async (paymentId: string) => {
      const [event] = await daemon.payments.outbox.byPayment(paymentId);
      if (!event) throw new Error(`no event for ${paymentId}`);
      return event;
    };
    const settled = (paymentId: string, state: string, attempts: number) =>
      waitFor(
        async () => {
          const e = await eventOf(paymentId);
          return e.state === state && e.attempts === attempts ? e : undefined;
        },
        { what: `${paymentId} ${state} after ${attempts} attempts` },
      );
    const okEvent = await settled(ok.id, "delivered", 1);
    const cliEvent = await settled(cliFailed.id, "failed", 1);
    const rpcEvent = await settled(rpcFailed.id, "failed", 1);
    expect(shop.received[0]?.headers.host).toBe(`shop.test:${shop.port}`);

    const [all, failedOnly, bad] = await Promise.all([
      cli(["postbacks", "list", "--config", config.path]),
      cli(["postbacks", "list", "--state", "failed", "--config", config.path]),
      cli(["postbacks", "list", "--state", "lost", "--config", config.path]),
    ]);
    expect(all.code).toBe(0);
    const rows = all.stdout.trim().split("\n");
    expect(rows[0]).toBe(
      "event_id\tpayment_id\tevent\tstate\tattempts\tlast_status\tnext_attempt_at\tdelivered_at\tlast_error",
    );
    // Creation order: the three payments may be paid in one scan, in any order.
    const byEvent = (a: string[], b: string[]) => (a[0] as string).localeCompare(b[0] as string);
    expect(
      rows
        .slice(1)
        .map((row) => row.split("\t").slice(0, 6))
        .sort(byEvent),
    ).toEqual(
      [
        [okEvent.id, ok.id, "payment.paid", "delivered", "1", "200"],
        [cliEvent.id, cliFailed.id, "payment.paid", "failed", "1", "410"],
        [rpcEvent.id, rpcFailed.id, "payment.paid", "failed", "1", "410"],
      ].sort(byEvent),
    );
    expect(rows.find((row) => row.startsWith(cliEvent.id))?.split("\t")[8]).toBe("HTTP 410");
    expect(
      failedOnly.stdout
        .trim()
        .split("\n")
        .slice(1)
        .map((row) => row.split("\t")[0])
        .sort(),
    ).toEqual([cliEvent.id, rpcEvent.id].sort());
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("expected one of pending, delivered, failed");

    gone = false;
    const [retryDelivered, retryFailed, retryUnknown] = await Promise.all([
      cli(["postbacks", "retry", okEvent.id, "--config", config.path]),
      cli(["postbacks", "retry", cliFailed.id, "--config", config.path]),
      cli(["postbacks", "retry", "0123456789abcdef", "--config", config.path]),
    ]);
    expect(retryDelivered).toMatchObject({ code: 0, stdout: `requeued\t${okEvent.id}\n` });
    expect(retryFailed).toMatchObject({ code: 0, stdout: `requeued\t${cliEvent.id}\n` });
    expect(retryUnknown.code).toBe(1);
    expect(retryUnknown.stderr).toContain("no postback event or payment with id 0123456789abcdef");
    // The running daemon picks the re-queued events up on its own (another process wrote them).
    await settled(ok.id, "delivered", 2);
    await settled(cliFailed.id, "delivered", 2);

    const resendDelivered = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 10,
      method: "resend_postback",
      params: { id: okEvent.id },
    });
    expect(resendDelivered.json).toEqual({
      jsonrpc: "2.0",
      result: { requeued: [okEvent.id] },
      id: 10,
    });
    const resendFailed = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 11,
      method: "resend_postback",
      params: { id: rpcFailed.id },
    });
    expect(resendFailed.json.result).toEqual({ requeued: [rpcEvent.id] });
    const unknown = await rpc(daemon.privateUrl, {
      jsonrpc: "2.0",
      id: 12,
      method: "resend_postback",
      params: { id: "evt_nope" },
    });
    expect(unknown.json.error).toEqual({ code: -32602, message: "Invalid params: unknown id" });
    await settled(ok.id, "delivered", 3);
    await settled(rpcFailed.id, "delivered", 2);

    // Every redelivery keeps the webhook-id and the body, and verifies.
    const byId = (id: string) => shop.received.filter((r) => r.headers["webhook-id"] === id);
    expect(byId(okEvent.id)).toHaveLength(3);
    expect(byId(cliEvent.id)).toHaveLength(2);
    expect(byId(rpcEvent.id)).toHaveLength(2);
    for (const id of [okEvent.id, cliEvent.id, rpcEvent.id]) {
      expect(new Set(byId(id).map((r) => r.body)).size).toBe(1);
    }
    for (const request of shop.received) {
      expect(new Webhook(SECRET).verify(request.body, headersOf(request))).toBeTruthy();
    }
  });

  test("0xbtcpay secret prints a new whsec_ secret of 32 random bytes", async () => {
    const [a, b] = await Promise.all([cli(["secret"]), cli(["secret"])]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^whsec_[A-Za-z0-9+/]{43}=\n$/);
    expect(Buffer.from(a.stdout.trim().slice(6), "base64")).toHaveLength(32);
    expect(b.stdout).not.toBe(a.stdout);
  });
});
