/**
 * The public port: what shoppers' browsers poll. Open to anyone, so it
 * reveals only what the original 0xBTCpay did plus additive progress fields,
 * never the shop's `data`, `order_id` or postback details (those are on the
 * private port only), and it limits requests per client IP.
 *
 * It is a plain node:http listener: status.json is the hot path of the
 * whole daemon (every shopper's browser polls it every second or two), and
 * the checkout page, its assets and its live stream are a few routes more.
 * Tests call that same listener over a real socket.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Allowlist, clientAddress } from "../internal/allowlist.ts";
import type { Clock } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import type { Payments } from "../payments/index.ts";
import type { Checkout, CheckoutRequest } from "./checkout/index.ts";
import type { LiveStreams } from "./live.ts";
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
  /** The hosted checkout page's routes; undefined: status.json only. */
  checkout?: Checkout | undefined;
  /** Live status streams for checkout pages (`GET /<id>/events`). */
  live?: LiveStreams | undefined;
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
const EVENTS_PATH = /^\/([0-9a-f]{16})\/events$/;
/** A checkout page: one path segment (a payment id, or something that is not one: the 404 page). */
const PAGE_PATH = /^\/[^/.]+$/;
const PAYMENT_ID = /^[0-9a-f]{16}$/;
const BASE_HEADERS = {
  "content-type": "application/json",
  "access-control-allow-origin": "*",
  "x-content-type-options": "nosniff",
} as const;
const NO_STORE = { ...BASE_HEADERS, "cache-control": "no-store" } as const;
const NOT_FOUND = JSON.stringify({ error: "not found" });

/** The per-client rate limit of every public request; undefined: allowed. */
function createClientLimit({
  logger,
  rateLimit,
  trustProxy,
  clock = { now: () => Date.now() },
}: PublicAppOptions): (request: PublicRequest) => PublicResponse | undefined {
  const log = logger.child({ module: "public" });
  const limiter = createRateLimiter({
    windowMs: rateLimit?.windowMs ?? 60_000,
    max: rateLimit?.max ?? 0,
    now: () => clock.now(),
  });
  return (request) => {
    if (!limiter.enabled) return undefined;
    const client = clientAddress({
      peer: request.peer,
      forwardedFor: request.forwardedFor,
      trustProxy,
    });
    const decision = limiter.hit(client);
    if (decision.allowed) return undefined;
    log.debug({ client }, "public port: rate limited");
    return {
      status: 429,
      headers: { ...NO_STORE, "retry-after": String(decision.retryAfterSeconds) },
      body: JSON.stringify({ error: "too many requests" }),
    };
  };
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  out: { status: number; headers: Record<string, string>; body: string | Buffer },
): void {
  res.setHeader("content-length", Buffer.byteLength(out.body));
  res.writeHead(out.status, out.headers);
  res.end(req.method === "HEAD" ? undefined : out.body);
}

const INTERNAL_ERROR: PublicResponse = {
  status: 500,
  headers: { ...BASE_HEADERS },
  body: JSON.stringify({ error: "internal error" }),
};

/**
 * The public port as a node:http request listener (what the daemon
 * serves): `GET|HEAD /<id>/status.json` first (the hot path), then, with
 * the checkout configured, `GET /<id>` (the page), `GET /<id>/events` (its
 * live stream) and `GET /assets/<file>`; everything else is a 404.
 */
export function createPublicListener(
  options: PublicAppOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { payments, checkout, live } = options;
  const limit = createClientLimit(options);
  const log = options.logger.child({ module: "public" });

  function checkoutRequest(req: IncomingMessage, path: string, search: string): CheckoutRequest {
    return {
      path,
      query: new URLSearchParams(search),
      cookie: req.headers.cookie,
      acceptLanguage: req.headers["accept-language"],
      acceptEncoding: req.headers["accept-encoding"] as string | undefined,
    };
  }

  /** The checkout routes; false: not one of them. */
  function routeCheckout(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    search: string,
  ): boolean {
    if (!checkout) return false;
    if (path.startsWith("/assets/")) {
      const asset = checkout.asset(path, req.headers["accept-encoding"] as string | undefined);
      send(req, res, asset ?? { status: 404, headers: BASE_HEADERS, body: NOT_FOUND });
      return true;
    }
    const events = EVENTS_PATH.exec(path);
    if (events) {
      if (req.method !== "GET" || !live) return false;
      const lastEventId = req.headers["last-event-id"];
      const id = events[1] as string;
      live.open(res, id, typeof lastEventId === "string" ? lastEventId : undefined).then(
        (opened) => {
          if (!opened) send(req, res, { status: 404, headers: NO_STORE, body: NOT_FOUND });
        },
        (error) => {
          log.error({ err: error, payment_id: id }, "public port: event stream failed");
          send(req, res, INTERNAL_ERROR);
        },
      );
      return true;
    }
    if (!PAGE_PATH.test(path)) return false;
    const request = checkoutRequest(req, path, search);
    const id = path.slice(1);
    if (!PAYMENT_ID.test(id)) {
      send(req, res, checkout.notFound(request));
      return true;
    }
    checkout.page(id, request).then(
      (out) => send(req, res, out),
      (error) => {
        log.error({ err: error, payment_id: id }, "public port: checkout page failed");
        send(req, res, INTERNAL_ERROR);
      },
    );
    return true;
  }

  return (req, res) => {
    try {
      const url = req.url ?? "/";
      const query = url.indexOf("?");
      const path = query === -1 ? url : url.slice(0, query);
      const forwarded = req.headers["x-forwarded-for"];
      const method = req.method ?? "GET";
      const limited = limit({
        method,
        path,
        peer: req.socket.remoteAddress,
        forwardedFor: Array.isArray(forwarded) ? forwarded.join(",") : forwarded,
      });
      if (limited) return send(req, res, limited);
      const isRead = method === "GET" || method === "HEAD";
      const match = isRead ? STATUS_PATH.exec(path) : null;
      if (match) {
        const id = match[1] as string;
        // The hot path: a cached body is sent at once, no promise on the way.
        const cached = payments.cachedStatusJson(id);
        if (cached !== undefined) {
          return send(req, res, { status: 200, headers: NO_STORE, body: cached });
        }
        payments.statusJson(id).then(
          (body) =>
            send(
              req,
              res,
              body === undefined
                ? { status: 404, headers: NO_STORE, body: NOT_FOUND }
                : { status: 200, headers: NO_STORE, body },
            ),
          (error) => {
            log.error({ err: error, payment_id: id }, "public port: status.json failed");
            send(req, res, INTERNAL_ERROR);
          },
        );
        return;
      }
      if (isRead && routeCheckout(req, res, path, query === -1 ? "" : url.slice(query + 1))) return;
      const statusRoute = isRead && path.endsWith("/status.json");
      send(req, res, {
        status: 404,
        headers: statusRoute ? NO_STORE : BASE_HEADERS,
        body: NOT_FOUND,
      });
    } catch (error) {
      log.error({ err: error }, "public port: unhandled error");
      send(req, res, INTERNAL_ERROR);
    }
  };
}

/**
 * A public request's route as the metrics label it: the template of the
 * route it matches (`/:id/status.json`), never the path, which holds a
 * payment id; `other` for the rest (404s).
 */
export function publicRouteOf(_method: string, path: string): string {
  if (STATUS_PATH.test(path)) return "/:id/status.json";
  if (EVENTS_PATH.test(path)) return "/:id/events";
  if (path.startsWith("/assets/")) return "/assets/:file";
  if (PAGE_PATH.test(path)) return "/:id";
  return "other";
}
