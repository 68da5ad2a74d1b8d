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
import { DEV_XPUB, type LocalChain, startLocalChain } from "../../src/chain/anvil.ts";
import { type ConfigInput, parseConfig } from "../../src/config/index.ts";
import { type Daemon, startDaemon } from "../../src/daemon.ts";
import { createLogger } from "../../src/internal/logger.ts";
import type { StatusView } from "../../src/payments/index.ts";

export const silentLogger = createLogger({ level: "silent" });

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

/** anvil (mining only when told) with the test token deployed and payer accounts funded. */
export async function startTestChain(): Promise<TestChain> {
  const chain = await startLocalChain();
  const token = await chain.deployToken();
  return { ...chain, token };
}

export function testConfig(
  chain: { rpcUrl: string; token: string },
  dbPath: string,
  overrides: { chain?: Partial<ConfigInput["chain"]>; payments?: ConfigInput["payments"] } = {},
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
    // Tests poll status.json every 20 ms: no per-IP rate limit here (test/public.test.ts covers it).
    public: { host: "127.0.0.1", port: 0, rateLimit: { windowMs: 60_000, max: 0 } },
    ...(overrides.payments ? { payments: overrides.payments } : {}),
    database: { path: dbPath },
    log: { level: "silent" },
  });
}

export async function startTestDaemon(
  chain: { rpcUrl: string; token: string },
  dbPath: string,
  overrides: Parameters<typeof testConfig>[2] = {},
): Promise<Daemon> {
  return startDaemon({ config: testConfig(chain, dbPath, overrides), logger: silentLogger });
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

/** A real HTTP receiver on 127.0.0.1 that records requests; `answer` picks each status. */
export async function startReceiver(answer: (request: ReceivedRequest) => number = () => 200) {
  const received: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
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
      res.writeHead(answer(request), { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/payment_complete`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
