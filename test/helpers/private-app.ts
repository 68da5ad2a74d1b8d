/**
 * The private and public ports as the daemon serves them: their node:http
 * listeners on real sockets on 127.0.0.1, over a real in-memory SQLite with
 * the real migrations (or over payments on any storage: `appsOn`), and a
 * clock tests move by hand.
 */
import { createServer, request as httpRequest, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { onTestFinished } from "vitest";
import { createAllowlist } from "../../src/internal/allowlist.ts";
import type { Logger } from "../../src/internal/logger.ts";
import type { Payments } from "../../src/payments/index.ts";
import { createPublicListener, type PublicAppOptions } from "../../src/public/index.ts";
import type { ApiKeyEntry } from "../../src/rpc/api-keys.ts";
import {
  createPrivateListener,
  type PrivateAppOptions,
  type RpcMethod,
} from "../../src/rpc/index.ts";
import { type ManualClock, manualClock, paymentsOn, silentLogger } from "./index.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests inspect arbitrary JSON-RPC bodies
export type Json = any;

export { TEST_TOKEN } from "./index.ts";

/** One request of a test client. */
export type ClientRequest = {
  method?: string;
  /** Sent as is: node:http refuses characters a URL must escape. */
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /**
   * The client's own address: anything in 127.0.0.0/8 (all loopback on
   * Linux), so tests can be several clients without leaving the host.
   */
  from?: string;
};

/**
 * Sends one request over a real socket to 127.0.0.1:`port` and returns the
 * answer as a fetch Response.
 */
export function request(
  port: number,
  { method = "GET", path = "/", headers = {}, body, from = "127.0.0.1" }: ClientRequest = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    let answered = false;
    // NOTE: node:http frames a body by itself only for some methods (a DELETE's
    // would be read as the next request); fetch always sends Content-Length.
    const length = body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) };
    const outgoing = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        headers: { ...length, ...headers },
        localAddress: from,
      },
      (incoming) => {
        answered = true;
        const chunks: Buffer[] = [];
        incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
        incoming.on("error", reject);
        incoming.on("end", () => {
          const received = new Headers();
          for (const [name, value] of Object.entries(incoming.headers)) {
            for (const one of Array.isArray(value) ? value : [value ?? ""]) {
              received.append(name, one);
            }
          }
          const bytes = Buffer.concat(chunks);
          resolve(
            new Response(bytes.length > 0 ? bytes : null, {
              status: incoming.statusCode ?? 0,
              statusText: incoming.statusMessage ?? "",
              headers: received,
            }),
          );
        });
      },
    );
    // A server that answers early (413) may close before the body is written.
    outgoing.on("error", (error) => {
      if (!answered) reject(error);
    });
    outgoing.end(body);
  });
}

/** Serves a node:http listener on 127.0.0.1 port 0; returns its URL and a close function. */
export async function listenNode(listener: RequestListener, { host = "127.0.0.1" } = {}) {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
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

/**
 * The port of `listener`, served from its first use until the end of the
 * test that uses it (a later test gets a new server on the same state).
 */
function servedOnDemand(listener: RequestListener): () => Promise<number> {
  let port: Promise<number> | undefined;
  return () => {
    port ??= listenNode(listener).then((server) => {
      onTestFinished(async () => {
        port = undefined;
        await server.close();
      });
      return server.port;
    });
    return port;
  };
}

/** What {@link setupApps} and {@link appsOn} take besides the payments. */
type AppOptions = {
  allow?: string[];
  /** Whether loopback callers are always let in (the daemon's rule); off: only `allow` is. */
  loopback?: boolean;
  apiKeys?: ApiKeyEntry[];
  trustProxy?: string[] | undefined;
  rateLimit?: { windowMs: number; max: number } | undefined;
  publicTrustProxy?: string[] | undefined;
  logger?: Logger;
  extraMethods?: RpcMethod[];
};

/**
 * The ports over a real in-memory SQLite (see {@link appsOn}), with its
 * database and two counts read from it.
 */
export async function setupApps(options: AppOptions = {}) {
  const clock = manualClock();
  const { db, payments } = await paymentsOn({ clock });
  const countPayments = () =>
    (db.prepare("SELECT count(*) AS n FROM payments").get() as { n: number }).n;
  const nextIndex = () =>
    (
      db.prepare("SELECT value FROM counters WHERE name = 'derivation_index'").get() as {
        value: number;
      }
    ).value;
  return { db, countPayments, nextIndex, ...appsOn({ payments, clock, ...options }) };
}

/** The private and public ports over `payments` (on either backend), and clients of them. */
export function appsOn({
  payments,
  clock,
  allow = [] as string[],
  /** Whether loopback callers are always let in (the daemon's rule); off: only `allow` is. */
  loopback = true,
  apiKeys = [] as ApiKeyEntry[],
  trustProxy = undefined as string[] | undefined,
  rateLimit = undefined as { windowMs: number; max: number } | undefined,
  publicTrustProxy = undefined as string[] | undefined,
  logger = silentLogger as Logger,
  extraMethods = [] as RpcMethod[],
}: AppOptions & { payments: Payments; clock: ManualClock }) {
  const privateOptions: PrivateAppOptions = {
    payments,
    allowlist: createAllowlist({ allow, loopback }),
    trustProxy: trustProxy ? createAllowlist({ allow: trustProxy, loopback: false }) : undefined,
    decimals: 8,
    maxWholeTokens: 20_999_984n,
    logger,
    apiKeys,
    extraMethods,
  };
  /** The private port as the daemon serves it. */
  const listener = createPrivateListener(privateOptions);
  const publicOptions: PublicAppOptions = {
    payments,
    logger,
    rateLimit,
    trustProxy: publicTrustProxy
      ? createAllowlist({ allow: publicTrustProxy, loopback: false })
      : undefined,
    clock,
  };
  const publicListener = createPublicListener(publicOptions);
  const privatePort = servedOnDemand(listener);
  const publicPort = servedOnDemand(publicListener);
  /** Any request to the private port. */
  const sendPrivate = async (options: ClientRequest) => request(await privatePort(), options);
  /** Any request to the public port. */
  const sendPublic = async (options: ClientRequest) => request(await publicPort(), options);
  /** POSTs `body` (object or raw string) to the private port's `/`. */
  const post = (
    body: unknown,
    { from = "127.0.0.1", headers = {} as Record<string, string> } = {},
  ) =>
    sendPrivate({
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      from,
    });
  /** Calls one method and returns the parsed body. */
  const call = async (
    method: string,
    params: unknown,
    headers: Record<string, string> = {},
  ): Promise<Json> => (await post({ jsonrpc: "2.0", id: 1, method, params }, { headers })).json();
  /** GETs `path` from the public port. */
  const getStatus = (
    path: string,
    { from = "127.0.0.1", headers = {} as Record<string, string> } = {},
  ) => sendPublic({ path, headers, from });
  return {
    clock,
    payments,
    listener,
    publicListener,
    sendPrivate,
    sendPublic,
    post,
    call,
    getStatus,
  };
}
