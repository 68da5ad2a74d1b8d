/**
 * The private and public apps in-process on a real in-memory SQLite with the
 * real migrations, for app.request() tests, and a clock tests move by hand.
 */
import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { createAllowlist } from "../../src/internal/allowlist.ts";
import type { Clock } from "../../src/internal/clock.ts";
import {
  createPublicApp,
  createPublicListener,
  type PublicAppOptions,
} from "../../src/public/index.ts";
import type { ApiKeyEntry } from "../../src/rpc/api-keys.ts";
import {
  createPrivateApp,
  createPrivateListener,
  type PrivateAppOptions,
} from "../../src/rpc/index.ts";
import { paymentsOn, silentLogger } from "./index.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests inspect arbitrary JSON-RPC bodies
export type Json = any;

export { TEST_TOKEN } from "./index.ts";

/** A clock at a fixed time that only moves when told to. */
export function manualClock(start = 1_800_000_000_000): Clock & { advance(ms: number): void } {
  let time = start;
  return {
    now: () => time,
    sleep: async () => {},
    advance(ms) {
      time += ms;
    },
  };
}

export function setupApps({
  allow = [] as string[],
  apiKeys = [] as ApiKeyEntry[],
  trustProxy = undefined as string[] | undefined,
  rateLimit = undefined as { windowMs: number; max: number } | undefined,
  publicTrustProxy = undefined as string[] | undefined,
} = {}) {
  const clock = manualClock();
  const { db, payments } = paymentsOn({ clock });
  const privateOptions: PrivateAppOptions = {
    payments,
    allowlist: createAllowlist({ allow }),
    trustProxy: trustProxy ? createAllowlist({ allow: trustProxy, loopback: false }) : undefined,
    decimals: 8,
    maxWholeTokens: 20_999_984n,
    logger: silentLogger,
    apiKeys,
  };
  const app = createPrivateApp(privateOptions);
  /** The same port as the daemon serves it: a node:http listener. */
  const listener = createPrivateListener(privateOptions);
  const publicOptions: PublicAppOptions = {
    payments,
    logger: silentLogger,
    rateLimit,
    trustProxy: publicTrustProxy
      ? createAllowlist({ allow: publicTrustProxy, loopback: false })
      : undefined,
    clock,
  };
  const publicApp = createPublicApp(publicOptions);
  const publicListener = createPublicListener(publicOptions);
  /** POSTs `body` (object or raw string) as if from TCP peer `peer`. */
  const post = async (
    body: unknown,
    { peer = "127.0.0.1", headers = {} as Record<string, string> } = {},
  ) =>
    app.request(
      "/",
      {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      },
      { incoming: { socket: { remoteAddress: peer } } },
    );
  /** Calls one method and returns the parsed body. */
  const call = async (
    method: string,
    params: unknown,
    headers: Record<string, string> = {},
  ): Promise<Json> => (await post({ jsonrpc: "2.0", id: 1, method, params }, { headers })).json();
  const getStatus = (path: string, peer = "203.0.113.9", headers: Record<string, string> = {}) =>
    publicApp.request(path, { headers }, { incoming: { socket: { remoteAddress: peer } } });
  const countPayments = () =>
    (db.prepare("SELECT count(*) AS n FROM payments").get() as { n: number }).n;
  const nextIndex = () =>
    (
      db.prepare("SELECT value FROM counters WHERE name = 'derivation_index'").get() as {
        value: number;
      }
    ).value;
  return {
    db,
    clock,
    payments,
    app,
    listener,
    publicApp,
    publicListener,
    post,
    call,
    getStatus,
    countPayments,
    nextIndex,
  };
}

/** Serves a node:http listener on 127.0.0.1 port 0; returns its URL and a close function. */
export async function listenNode(listener: RequestListener) {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
