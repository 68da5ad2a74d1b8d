/**
 * `0xbtcpay serve` as a child process: one daemon per database (the lock
 * dies with the process), and the graceful stop on SIGTERM/SIGINT (requests
 * in flight answered, a second signal forces).
 */
import { request } from "node:http";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  CHILD_PROCESS_TIMEOUT_MS,
  cli,
  type DaemonChild,
  spawnDaemon,
  writeDaemonConfig,
} from "../helpers/cli.ts";
import { rpc, startTestChain, type TestChain, tempDir } from "../helpers/index.ts";

let chain: TestChain;
const dir = tempDir();
const daemons: DaemonChild[] = [];
beforeAll(async () => {
  chain = await startTestChain();
});
afterEach(async () => {
  for (const daemon of daemons.splice(0)) await daemon.kill9();
});
afterAll(async () => {
  await chain?.stop();
  dir.cleanup();
});

let counter = 0;
function newConfig() {
  const dbPath = join(dir.path, `db-${++counter}.sqlite`);
  const path = writeDaemonConfig(dir.path, {
    rpcUrl: chain.rpcUrl,
    token: chain.token,
    dbPath,
    name: `config-${counter}.json`,
  });
  return { path, dbPath };
}

async function daemonOn(configPath: string) {
  const daemon = await spawnDaemon(configPath);
  daemons.push(daemon);
  return daemon;
}

const START_PAYMENT = JSON.stringify({
  jsonrpc: "2.0",
  id: 7,
  method: "start_payment",
  params: { amount: "1.5", data: { order_id: "held" } },
});

/**
 * A start_payment whose body is held back: the daemon has the request (it
 * answered "100 Continue") but cannot answer until `send()`.
 */
function heldStartPayment(privateUrl: string) {
  const req = request(`${privateUrl}/`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(START_PAYMENT),
      expect: "100-continue",
    },
  });
  const continued = new Promise<void>((resolve) => req.once("continue", () => resolve()));
  const response = new Promise<{ status: number; connection: string | undefined; text: string }>(
    (resolve, reject) => {
      req.once("response", (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }),
        );
      });
      req.once("error", reject);
    },
  );
  response.catch(() => {});
  req.flushHeaders();
  return { continued, response, send: () => req.end(START_PAYMENT) };
}

async function connectError(url: string): Promise<string | undefined> {
  try {
    await fetch(url);
    return undefined;
  } catch (error) {
    return (error as { cause?: { code?: string } }).cause?.code;
  }
}

describe("one daemon per database", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("a second serve on the same database exits 1 naming the first; after kill -9 of the first a new one starts", async () => {
    const config = newConfig();
    const first = await daemonOn(config.path);

    const second = await cli(["serve", "--config", config.path]);
    expect(second.code).toBe(1);
    const refusal = second.stderr.split("\n").find((line) => line.startsWith("0xbtcpay: "));
    expect(refusal).toMatch(
      new RegExp(
        `^0xbtcpay: database ${config.dbPath.replaceAll(".", "\\.")} is in use by a 0xbtcpay daemon \\(pid ${first.child.pid}, started \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\\): stop it first$`,
      ),
    );
    expect(second.stderr).not.toContain("daemon started");
    // The first one was not disturbed.
    const { json } = await rpc(first.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "start_payment",
      params: { amount: "1" },
    });
    expect(json.result.amount).toBe("1");

    await first.kill9();
    const third = await daemonOn(config.path);
    const again = await rpc(third.privateUrl, {
      jsonrpc: "2.0",
      id: 1,
      method: "get_payment",
      params: { id: json.result.id },
    });
    expect(again.json.result.id).toBe(json.result.id);
  });
});

describe("graceful stop", { timeout: CHILD_PROCESS_TIMEOUT_MS }, () => {
  test("SIGTERM with a start_payment in flight: no new connections, the call is answered and committed, exit code 0", async () => {
    const config = newConfig();
    const daemon = await daemonOn(config.path);
    const held = heldStartPayment(daemon.privateUrl);
    await held.continued;

    daemon.child.kill("SIGTERM");
    const stopping = JSON.parse(
      await daemon.waitForLog("stopping: no new connections; finishing requests in flight"),
    ) as { in_flight: number };
    expect(stopping.in_flight).toBe(1);
    expect(await connectError(`${daemon.privateUrl}/`)).toBe("ECONNREFUSED");

    held.send();
    const answer = await held.response;
    expect(answer.status).toBe(200);
    expect(answer.connection).toBe("close");
    const result = (JSON.parse(answer.text) as { result: { id: string; amount: string } }).result;
    expect(result.amount).toBe("1.5");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });

    const db = new Database(config.dbPath, { readonly: true });
    const row = db.prepare("SELECT amount, data FROM payments WHERE id = ?").get(result.id);
    db.close();
    expect(row).toEqual({ amount: "150000000", data: JSON.stringify({ order_id: "held" }) });
  });

  test("a second signal during a slow stop forces the exit with code 1", async () => {
    const config = newConfig();
    const daemon = await daemonOn(config.path);
    const held = heldStartPayment(daemon.privateUrl);
    await held.continued;

    daemon.child.kill("SIGTERM");
    await daemon.waitForLog("stopping: no new connections");
    daemon.child.kill("SIGINT");
    expect(await daemon.exited).toEqual({ code: 1, signal: null });
    expect(daemon.log()).toContain("0xbtcpay: SIGINT again, exiting now\n");
    await expect(held.response).rejects.toThrow("socket hang up");
  });

  test("a request held past the drain timeout is cut and the daemon still stops with code 0", async () => {
    const config = newConfig();
    const daemon = await daemonOn(config.path);
    const held = heldStartPayment(daemon.privateUrl);
    await held.continued;

    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    const cut = JSON.parse(
      daemon
        .log()
        .split("\n")
        .find((line) => line.includes("requests still in flight after the drain timeout")) ?? "{}",
    );
    expect(cut).toMatchObject({ port: "private", requests: 1, timeout_ms: 5000 });
    await expect(held.response).rejects.toThrow("socket hang up");
  });
});
