/**
 * The public port: what shoppers' browsers poll. Open to anyone, so it
 * reveals only what the original 0xBTCpay did plus additive progress fields,
 * never the shop's `data` or postback details.
 */
import { Hono } from "hono";
import type { Logger } from "../internal/logger.ts";
import { PAYMENT_ID_PATTERN } from "../payments/ids.ts";
import type { Payments } from "../payments/index.ts";

export function createPublicApp({ payments, logger }: { payments: Payments; logger: Logger }) {
  const log = logger.child({ module: "public" });
  const app = new Hono();

  app.use(async (c, next) => {
    await next();
    c.header("Access-Control-Allow-Origin", "*");
    c.header("X-Content-Type-Options", "nosniff");
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
