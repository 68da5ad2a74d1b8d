/**
 * Connection caps and timeouts of the public port: the one place where
 * thousands of browsers hold a connection open (keep-alive polls, SSE
 * streams), so the place where one hostile client could take every file
 * descriptor of the process, and with them the private port, the database
 * and the chain watcher's RPC connections.
 *
 * Connections are counted when they are accepted, before node:http sees
 * them: in total, and per client address (the TCP peer; a trusted reverse
 * proxy is not capped per address, all shoppers arrive from it). Over a cap,
 * the connection gets a fixed, minimal HTTP answer (503 over the total cap,
 * 429 over the per-address cap, both with Retry-After and
 * `Connection: close`) and is closed; its request is never parsed.
 */
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { Allowlist } from "../internal/allowlist.ts";
import type { Logger } from "../internal/logger.ts";
import { clientKey } from "./rate-limit.ts";

/**
 * Descriptors left to everything but public connections: SQLite (the
 * database, its WAL and shared memory, the checkpointer's connection), the
 * RPC client's and the websocket's connections, the private port's clients,
 * postbacks (up to 64 in flight), worker threads, stdio, and the refused
 * public connections still being closed (up to twice {@link MAX_CLOSING}).
 */
export const DESCRIPTOR_RESERVE = 512;
/** The descriptor limit assumed where /proc/self/limits cannot be read (not Linux). */
export const FALLBACK_DESCRIPTOR_LIMIT = 1024;
/** The smallest cap (as `public.maxConnections` allows). */
export const MIN_MAX_CONNECTIONS = 16;
/**
 * Refused connections being closed at once, at most; past that, refused
 * connections get their answer and are closed on the spot.
 */
export const MAX_CLOSING = 128;
/** How long a refused connection may stay open while its answer is delivered. */
export const CLOSING_MS = 2_000;
/** How often node:http looks for connections past the headers timeout. */
const TIMEOUT_CHECK_MS = 1_000;

/** Which connection settings of `public` this module applies. */
export type ConnectionSettings = {
  /** Undefined: {@link defaultMaxConnections} of the process's descriptor limit. */
  maxConnections?: number | undefined;
  maxConnectionsPerIp: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
};

export type ConnectionLimits = {
  /** The total cap in force (configured, or derived from the descriptor limit). */
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** Public connections open now (accepted and not closed; refused ones not included). */
  open(): number;
  /** Open connections of one client address (0 for a trusted proxy: it is not counted per address). */
  openFrom(peer: string): number;
  /** Connections refused so far: over the total cap, over the per-address cap. */
  refused(): { total: number; perIp: number };
  /** Closes the refused connections still being closed; later ones are closed at once (shutdown). */
  close(): void;
};

/**
 * The soft "Max open files" limit in the text of /proc/<pid>/limits;
 * undefined if the line is missing or the limit is not a number ("unlimited").
 */
export function parseDescriptorLimit(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+)\s/m.exec(limits);
  if (!match) return undefined;
  const limit = Number(match[1]);
  return Number.isSafeInteger(limit) && limit > 0 ? limit : undefined;
}

/**
 * The process's soft RLIMIT_NOFILE (what `ulimit -n` shows, systemd's
 * `LimitNOFILE=`), read from /proc/self/limits; {@link FALLBACK_DESCRIPTOR_LIMIT}
 * where that cannot be read (not Linux).
 */
export function readDescriptorLimit(
  read: () => string = () => readFileSync("/proc/self/limits", "utf8"),
): number {
  try {
    return parseDescriptorLimit(read()) ?? FALLBACK_DESCRIPTOR_LIMIT;
  } catch {
    return FALLBACK_DESCRIPTOR_LIMIT;
  }
}

/**
 * The default total cap for a descriptor limit: half of it, and never more
 * than the limit minus {@link DESCRIPTOR_RESERVE}; at least
 * {@link MIN_MAX_CONNECTIONS} (a limit that low leaves too little anyway:
 * see {@link connectionCap}). 1024 → 512, 4096 → 2048, 20000 → 10000.
 */
export function defaultMaxConnections(descriptorLimit: number): number {
  return Math.max(
    MIN_MAX_CONNECTIONS,
    Math.min(Math.floor(descriptorLimit / 2), descriptorLimit - DESCRIPTOR_RESERVE),
  );
}

/**
 * The total cap in force: the configured one, else the default for the
 * descriptor limit; `crowded` when it leaves the rest of the daemon fewer
 * than {@link DESCRIPTOR_RESERVE} descriptors (the daemon warns at start).
 */
export function connectionCap({
  configured,
  descriptorLimit,
}: {
  configured: number | undefined;
  descriptorLimit: number;
}): { maxConnections: number; crowded: boolean } {
  const maxConnections = configured ?? defaultMaxConnections(descriptorLimit);
  return { maxConnections, crowded: maxConnections > descriptorLimit - DESCRIPTOR_RESERVE };
}

/** A complete HTTP/1.1 answer to a connection refused before its request was read. */
function refusal(status: 503 | 429, reason: string, retryAfterSeconds: number): Buffer {
  const body = JSON.stringify({ error: reason });
  return Buffer.from(
    `HTTP/1.1 ${status} ${status === 503 ? "Service Unavailable" : "Too Many Requests"}\r\n` +
      `Retry-After: ${retryAfterSeconds}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: application/json\r\n" +
      "Cache-Control: no-store\r\n" +
      "Access-Control-Allow-Origin: *\r\n" +
      "X-Content-Type-Options: nosniff\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `\r\n${body}`,
    "latin1",
  );
}

/** Whether `open` has fallen back below 90 % of `cap`: the end of an episode over it. */
function backBelow(open: number, cap: number): boolean {
  return open * 10 < cap * 9;
}

type Client = { open: number; refused: number; warned: boolean };

/**
 * Applies the caps and timeouts to the public port's `server`; call it
 * before `listen` (node:http starts its timeout checks on listening).
 *
 * Timeouts: `headersTimeout` and `requestTimeout` (the public port takes no
 * request bodies) are `headersTimeoutMs`, and a connection that sends
 * nothing is closed after it too (node:http answers 408); idle keep-alive
 * connections close after `keepAliveTimeoutMs`. None of them cuts an SSE
 * stream: they apply while a request is being received or between requests,
 * never while a response is being sent.
 *
 * Each cap's warning is logged once per episode: when a first connection is
 * refused, with the counts; the episode ends (an info line with the number
 * refused) when the count falls back below 90 % of the cap.
 */
export function createConnectionLimits({
  server,
  settings,
  trustProxy,
  logger,
  descriptorLimit = readDescriptorLimit(),
}: {
  server: Server;
  settings: ConnectionSettings;
  /** Reverse proxies: counted in the total only. */
  trustProxy: Allowlist | undefined;
  logger: Logger;
  /** The process's descriptor limit (default: read from /proc/self/limits). */
  descriptorLimit?: number;
}): ConnectionLimits {
  const log = logger.child({ module: "public" });
  const { maxConnections, crowded } = connectionCap({
    configured: settings.maxConnections,
    descriptorLimit,
  });
  const maxPerIp = settings.maxConnectionsPerIp;
  log.info(
    {
      max_connections: maxConnections,
      max_connections_per_ip: maxPerIp,
      descriptor_limit: descriptorLimit,
    },
    "public port: connection caps",
  );
  if (crowded) {
    log.warn(
      { max_connections: maxConnections, descriptor_limit: descriptorLimit },
      `public.maxConnections leaves fewer than ${DESCRIPTOR_RESERVE} file descriptors to the rest of the daemon: raise the limit (ulimit -n, systemd LimitNOFILE=) or lower public.maxConnections`,
    );
  }

  server.headersTimeout = settings.headersTimeoutMs;
  server.requestTimeout = settings.headersTimeoutMs;
  server.keepAliveTimeout = settings.keepAliveTimeoutMs;
  // NOTE: node:http checks headersTimeout only every 30 s by default: a
  // connection that sends nothing would stay up to 40 s instead of 10. (A
  // documented option since Node 18.12 that @types/node 20 lacks.)
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
    TIMEOUT_CHECK_MS;
  // NOTE: a backstop under the counting here: net.Server closes, unanswered,
  // connections past the cap plus twice the refused ones being closed (those
  // closed at once still count until their handle is closed, a moment later).
  server.maxConnections = maxConnections + 2 * MAX_CLOSING;

  // Idle keep-alive connections close within keepAliveTimeoutMs: the
  // soonest a slot is likely to be free.
  const retryAfter = Math.max(1, Math.ceil(settings.keepAliveTimeoutMs / 1000));
  const BUSY = refusal(503, "server busy", retryAfter);
  const TOO_MANY = refusal(429, "too many connections", retryAfter);

  let open = 0;
  const clients = new Map<string, Client>();
  const closing = new Set<Socket>();
  let closed = false;
  const refused = { total: 0, perIp: 0 };
  /** The episode over the total cap: connections refused in it; undefined: none running. */
  let overTotal: number | undefined;

  function refuse(socket: Socket, answer: Buffer): void {
    // A reset from the client changes nothing here.
    socket.on("error", () => {});
    socket.end(answer);
    if (closed || closing.size >= MAX_CLOSING) {
      // The answer is in the kernel's send buffer already (a fresh socket's
      // first write completes at once); destroy only frees the descriptor.
      socket.destroy();
      return;
    }
    // NOTE: closing a socket whose input was not read makes the kernel send a
    // reset, which may reach the client before it reads the answer. So the
    // input is drained (never parsed) until the client closes, for at most
    // CLOSING_MS (nginx's "lingering close").
    socket.resume();
    closing.add(socket);
    const timer = setTimeout(() => socket.destroy(), CLOSING_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      closing.delete(socket);
    });
  }

  /** Counts `socket` in; false: it was refused (answered and being closed). */
  function admit(socket: Socket): boolean {
    const peer = socket.remoteAddress;
    if (peer === undefined) {
      // Already closed by the client before it got here.
      socket.destroy();
      return false;
    }
    const key = trustProxy?.allows(peer) ? undefined : clientKey(peer);
    const client = key === undefined ? undefined : clients.get(key);
    if (client && client.open >= maxPerIp) {
      refused.perIp++;
      client.refused++;
      if (!client.warned) {
        client.warned = true;
        log.warn(
          {
            client: key,
            open_from_client: client.open,
            max_connections_per_ip: maxPerIp,
            open,
            max_connections: maxConnections,
          },
          "public port: a client reached the per-IP connection cap; refusing its new connections with 429",
        );
      }
      refuse(socket, TOO_MANY);
      return false;
    }
    if (open >= maxConnections) {
      refused.total++;
      if (overTotal === undefined) {
        overTotal = 0;
        log.warn(
          { open, max_connections: maxConnections, clients: clients.size },
          "public port: connection cap reached; refusing new connections with 503",
        );
      }
      overTotal++;
      refuse(socket, BUSY);
      return false;
    }
    open++;
    let counted = client;
    if (key !== undefined && !counted) {
      counted = { open: 0, refused: 0, warned: false };
      clients.set(key, counted);
    }
    if (counted) counted.open++;
    socket.once("close", () => {
      open--;
      if (overTotal !== undefined && backBelow(open, maxConnections)) {
        log.info(
          { open, max_connections: maxConnections, refused: overTotal },
          "public port: back under the connection cap",
        );
        overTotal = undefined;
      }
      if (key === undefined || !counted) return;
      counted.open--;
      if (counted.warned && backBelow(counted.open, maxPerIp)) {
        log.info(
          { client: key, open_from_client: counted.open, refused: counted.refused },
          "public port: a client is back under the per-IP connection cap",
        );
        counted.warned = false;
        counted.refused = 0;
      }
      if (counted.open === 0) clients.delete(key);
    });
    return true;
  }

  // NOTE: node:http's own "connection" listener starts parsing at once; a
  // refused connection must never reach it, so it is called from here, for
  // admitted connections only.
  const downstream = server.listeners("connection") as Array<(socket: Socket) => void>;
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    if (!admit(socket)) return;
    for (const listener of downstream) listener.call(server, socket);
  });

  return {
    maxConnections,
    maxConnectionsPerIp: maxPerIp,
    open: () => open,
    openFrom(peer) {
      return clients.get(clientKey(peer))?.open ?? 0;
    },
    refused: () => ({ ...refused }),
    close() {
      closed = true;
      for (const socket of closing) socket.destroy();
    },
  };
}
