/**
 * The private port: JSON-RPC 2.0 for the shop's server, behind an IP
 * allowlist. Wire-compatible with the original 0xBTCpay's `start_payment`.
 */
import type { HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { toUnixSeconds } from "../internal/clock.ts";
import type { Logger } from "../internal/logger.ts";
import { formatAmount, parseAmount } from "../payments/amount.ts";
import type { Payments } from "../payments/index.ts";
import { type Allowlist, clientAddress } from "./allowlist.ts";
import {
  FORBIDDEN,
  failure,
  INVALID_REQUEST,
  InvalidParamsError,
  idOf,
  type JsonRpcResponse,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  success,
  validateEnvelope,
} from "./jsonrpc.ts";
import { rawMember } from "./raw-json.ts";

/** Largest request body the private port reads. */
export const MAX_BODY_BYTES = 64 * 1024;

export type PrivateAppOptions = {
  payments: Payments;
  allowlist: Allowlist;
  /** Proxies whose X-Forwarded-For is believed; undefined: only the TCP peer counts. */
  trustProxy?: Allowlist | undefined;
  decimals: number;
  maxWholeTokens: bigint;
  logger: Logger;
  /**
   * Postback controls: the SSRF guard for start_payment's postback_url and
   * `resend_postback`. Undefined (wire-format unit tests): URLs are checked
   * for syntax only and `resend_postback` is not offered.
   */
  postbacks?: PostbackControl | undefined;
};

/** What the private port needs from src/postbacks. */
export type PostbackControl = {
  checkUrl(url: string): Promise<{ allowed: true } | { allowed: false; reason: string }>;
  /** Re-queues an event (event id) or a payment's events (payment id); returns their ids. */
  resend(id: string): string[];
};

/** A postback URL the daemon may call: absolute http(s). */
export function isValidPostbackUrl(value: unknown): value is string {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

export function createPrivateApp(options: PrivateAppOptions) {
  const { payments, allowlist, trustProxy, decimals, maxWholeTokens } = options;
  const log = options.logger.child({ module: "rpc" });
  const app = new Hono<{ Bindings: HttpBindings }>();

  const respond = (body: JsonRpcResponse, status: 200 | 403 | 413 = 200) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });

  app.use(async (c, next) => {
    const peer = c.env?.incoming?.socket?.remoteAddress;
    const client = clientAddress({
      peer,
      forwardedFor: c.req.header("x-forwarded-for"),
      trustProxy,
    });
    if (!allowlist.allows(client)) {
      log.warn({ peer, client }, "private port: caller not in the allowlist");
      return respond(failure(FORBIDDEN, null), 403);
    }
    await next();
  });

  async function startPayment(params: unknown, rawBody: string) {
    const p = (Array.isArray(params) ? {} : params) as Record<string, unknown>;
    if (p.amount === undefined || p.amount === null) throw new InvalidParamsError("missing amount");
    const amount = parseAmount(p.amount, { decimals, maxWholeTokens });
    if (!amount.ok) throw new InvalidParamsError("invalid amount");
    const postbackUrl = p.postback_url ?? null;
    if (postbackUrl !== null && !isValidPostbackUrl(postbackUrl)) {
      throw new InvalidParamsError("invalid postback URL");
    }
    if (postbackUrl !== null && options.postbacks) {
      const verdict = await options.postbacks.checkUrl(postbackUrl);
      if (!verdict.allowed) {
        log.warn({ reason: verdict.reason }, "start_payment: postback target not allowed");
        throw new InvalidParamsError("invalid postback URL: target not allowed");
      }
    }
    let data: string | null = null;
    if ("data" in p && p.data !== undefined) {
      try {
        data = rawMember(rawBody, ["params", "data"]) ?? JSON.stringify(p.data);
      } catch {
        data = JSON.stringify(p.data);
      }
    }
    const row = payments.create({ amount: amount.value, data, postbackUrl });
    log.info(
      { payment_id: row.id, amount: row.amount, derivation_index: row.derivation_index },
      "payment created",
    );
    return {
      id: row.id,
      amount: formatAmount(amount.value, decimals),
      address: row.address,
      expires_at: toUnixSeconds(row.expires_at),
    };
  }

  /** `resend_postback` {id: event id or payment id}. Permission (merchant API keys): "postbacks:resend". */
  function resendPostback(params: unknown) {
    const id = (params as { id?: unknown }).id;
    if (typeof id !== "string" || id === "") throw new InvalidParamsError("missing id");
    const requeued = options.postbacks?.resend(id) ?? [];
    if (requeued.length === 0) throw new InvalidParamsError("unknown id");
    return { requeued };
  }

  app.post(
    "/",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => respond(failure({ code: -32600, message: "Request too large" }, null), 413),
    }),
    async (c) => {
      const text = await c.req.text();
      let request: unknown;
      try {
        request = JSON.parse(text);
      } catch {
        return respond(failure(PARSE_ERROR, null));
      }
      const envelope = validateEnvelope(request);
      if (!envelope) return respond(failure(INVALID_REQUEST, idOf(request)));
      const resendOffered = envelope.method === "resend_postback" && options.postbacks;
      if (envelope.method !== "start_payment" && !resendOffered) {
        return respond(failure(METHOD_NOT_FOUND, envelope.id));
      }
      try {
        if (resendOffered) return respond(success(resendPostback(envelope.params), envelope.id));
        return respond(success(await startPayment(envelope.params, text), envelope.id));
      } catch (error) {
        if (error instanceof InvalidParamsError) return respond(failure(error, envelope.id));
        log.error({ err: error }, `${envelope.method} failed`);
        return respond(failure({ code: -32603, message: "Internal error" }, envelope.id));
      }
    },
  );

  app.all("*", (c) => c.json({ error: "not found" }, 404));
  app.onError((error) => {
    log.error({ err: error }, "private port: unhandled error");
    return respond(failure({ code: -32603, message: "Internal error" }, null));
  });
  return app;
}
