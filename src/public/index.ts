/**
 * The public port: what shoppers' browsers poll. Open to anyone, so it
 * reveals only what the original 0xBTCpay did plus additive progress fields,
 * never the shop's `data`, `order_id` or postback details (those are on the
 * private port only), and it limits requests per client IP.
 *
 * It serves one route, so it is a plain node:http listener (the hot path of
 * the whole daemon: every shopper's browser polls it every second or two).
 * Tests call that same listener over a real socket.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Allowlist, clientAddress } from "../internal/allowlist.ts";
import type { Clock } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import type { Payments } from "../payments/index.ts";
import { createRateLimiter } from "./rate-limit.ts";

/** What the public port needs. */
export type PublicAppOptions = {
  payments: Payments;
  logger: Logger;
  /** Per-client limit: `max` requests per `windowMs`; `max` 0 or undefined: no limit. */
  rateLimit?: { windowMs: number; max: number } | undefined;
  /** Proxies whose X-Forwarded-For names the client; undefined: the TCP peer is the client. */
  trustProxy?: Allowlist | undefined;
  clock?: Pick<Clock, "now"> | undefined;
};

export type PublicRequest = {
  method: string;
  /** The path without the query string. */
  path: string;
  peer: string | undefined;
  forwardedFor: string | undefined;
};

export type PublicResponse = { status: number; headers: Record<string, string>; body: string };

const STATUS_PATH = /^\/([0-9a-f]{16})\/status\.json$/;
const BASE_HEADERS = {
  "content-type": "application/json",
  "access-control-allow-origin": "*",
  "x-content-type-options": "nosniff",
} as const;
const NO_STORE = { ...BASE_HEADERS, "cache-control": "no-store" } as const;
const NOT_FOUND = JSON.stringify({ error: "not found" });

/** Answers one public request: `GET|HEAD /:id/status.json`, everything else 404. */
export function createPublicResponder({
  payments,
  logger,
  rateLimit,
  trustProxy,
  clock = { now: () => Date.now() },
}: PublicAppOptions): (request: PublicRequest) => PublicResponse {
  const log = logger.child({ module: "public" });
  const limiter = createRateLimiter({
    windowMs: rateLimit?.windowMs ?? 60_000,
    max: rateLimit?.max ?? 0,
    now: () => clock.now(),
  });
  return (request) => {
    if (limiter.enabled) {
      const client = clientAddress({
        peer: request.peer,
        forwardedFor: request.forwardedFor,
        trustProxy,
      });
      const decision = limiter.hit(client);
      if (!decision.allowed) {
        log.debug({ client }, "public port: rate limited");
        return {
          status: 429,
          headers: { ...NO_STORE, "retry-after": String(decision.retryAfterSeconds) },
          body: JSON.stringify({ error: "too many requests" }),
        };
      }
    }
    const isRead = request.method === "GET" || request.method === "HEAD";
    const match = isRead ? STATUS_PATH.exec(request.path) : null;
    if (!match) {
      const statusRoute = isRead && request.path.endsWith("/status.json");
      return { status: 404, headers: statusRoute ? NO_STORE : BASE_HEADERS, body: NOT_FOUND };
    }
    const body = payments.statusJson(match[1] as string);
    if (body === undefined) return { status: 404, headers: NO_STORE, body: NOT_FOUND };
    return { status: 200, headers: NO_STORE, body };
  };
}

/** The public port as a node:http request listener (what the daemon serves). */
export function createPublicListener(
  options: PublicAppOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const respond = createPublicResponder(options);
  const log = options.logger.child({ module: "public" });
  return (req, res) => {
    let out: PublicResponse;
    try {
      const url = req.url ?? "/";
      const query = url.indexOf("?");
      const forwarded = req.headers["x-forwarded-for"];
      out = respond({
        method: req.method ?? "GET",
        path: query === -1 ? url : url.slice(0, query),
        peer: req.socket.remoteAddress,
        forwardedFor: Array.isArray(forwarded) ? forwarded.join(",") : forwarded,
      });
    } catch (error) {
      log.error({ err: error }, "public port: unhandled error");
      out = {
        status: 500,
        headers: { ...BASE_HEADERS },
        body: JSON.stringify({ error: "internal error" }),
      };
    }
    res.setHeader("content-length", Buffer.byteLength(out.body));
    res.writeHead(out.status, out.headers);
    res.end(req.method === "HEAD" ? undefined : out.body);
  };
}
