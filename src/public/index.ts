/**
 * The public port: what shoppers' browsers poll. Open to anyone, so it
 * reveals only what the original 0xBTCpay did plus additive progress fields,
 * never the shop's `data`, `order_id` or postback details (those are on the
 * private port only), and it limits requests per client IP.
 */
import type { HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import type { Clock } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import { PAYMENT_ID_PATTERN } from "../payments/ids.ts";
import type { Payments } from "../payments/index.ts";
import { type Allowlist, clientAddress } from "../rpc/allowlist.ts";
import { createRateLimiter } from "./rate-limit.ts";

/** What createPublicApp needs. */
export type PublicAppOptions = {
  payments: Payments;
  logger: Logger;
  /** Per-client limit: `max` requests per `windowMs`; `max` 0 or undefined: no limit. */
  rateLimit?: { windowMs: number; max: number } | undefined;
  /** Proxies whose X-Forwarded-For names the client; undefined: the TCP peer is the client. */
  trustProxy?: Allowlist | undefined;
  clock?: Pick<Clock, "now"> | undefined;
};

/** Builds the public port's app: `GET /:id/status.json`, everything else 404. */
export function createPublicApp({
  payments,
  logger,
  rateLimit,
  trustProxy,
  clock = { now: () => Date.now() },
}: PublicAppOptions) {
  const log = logger.child({ module: "public" });
  const app = new Hono<{ Bindings: HttpBindings }>();
  const limiter = createRateLimiter({
    windowMs: rateLimit?.windowMs ?? 60_000,
    max: rateLimit?.max ?? 0,
    now: () => clock.now(),
  });

  app.use(async (c, next) => {
    await next();
    c.header("Access-Control-Allow-Origin", "*");
    c.header("X-Content-Type-Options", "nosniff");
  });

  app.use(async (c, next) => {
    const client = clientAddress({
      peer: c.env?.incoming?.socket?.remoteAddress,
      forwardedFor: c.req.header("x-forwarded-for"),
      trustProxy,
    });
    const decision = limiter.hit(client);
    if (!decision.allowed) {
      log.debug({ client }, "public port: rate limited");
      c.header("Retry-After", String(decision.retryAfterSeconds));
      c.header("Cache-Control", "no-store");
      return c.json({ error: "too many requests" }, 429);
    }
    await next();
  });

  app.get("/:id/status.json", (c) => {
    c.header("Cache-Control", "no-store");
    const id = c.req.param("id");
    if (!PAYMENT_ID_PATTERN.test(id)) return c.json({ error: "not found" }, 404);
    const view = payments.view(id);
    if (!view) return c.json({ error: "not found" }, 404);
    return c.json(view);
  });

  app.all("*", (c) => c.json({ error: "not found" }, 404));
  app.onError((error, c) => {
    log.error({ err: error }, "public port: unhandled error");
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
