import { toUnixSeconds } from "../../internal/clock.ts";
import { formatAmount, parseAmount } from "../../payments/amount.ts";
import { OrderIdConflictError, ScanNotStartedError } from "../../payments/errors.ts";
import type { Payments } from "../../payments/index.ts";
import { acceptedNetworksOf, EVENT_TYPES, type EventType } from "../../payments/lifecycle.ts";
import { InvalidParamsError, JsonRpcError } from "../jsonrpc.ts";
import {
  optionalEventTypes,
  optionalInteger,
  optionalNetworks,
  optionalString,
  optionalUrl,
} from "../params.ts";
import type { RpcMethod } from "../registry.ts";

/** The SSRF guard's verdict on a postback URL (resolves its host). */
export type PostbackUrlCheck = (
  url: string,
) => Promise<{ allowed: true } | { allowed: false; reason: string }>;

/** Largest `data`, as the UTF-8 bytes of its JSON text. */
export const MAX_DATA_BYTES = 16 * 1024;
/** Longest `order_id`, in characters (UTF-16 code units). */
export const MAX_ORDER_ID_LENGTH = 128;
/** Longest `description`, in characters (UTF-16 code units). */
export const MAX_DESCRIPTION_LENGTH = 1000;
/**
 * The error code of a start_payment refused because the daemon has not read
 * the chain yet (its first seconds on a new database): the shop retries.
 */
export const SCAN_NOT_STARTED = -32002;

/** Bounds of `expires_in`, in seconds: 1 minute to 30 days. */
export const EXPIRES_IN_BOUNDS = { min: 60, max: 30 * 86_400 } as const;

/**
 * `start_payment`: the original's method (amount, data, postback_url), plus
 * optional order_id (idempotent create), expires_in, description,
 * return_url, cancel_url, postback_events (the opt-in to events besides
 * payment.paid) and networks (the only networks whose funds count).
 * Checks run in the original's order first, so its error messages come out
 * as before.
 */
export function startPaymentMethod({
  payments,
  decimals,
  maxWholeTokens,
  checkUrl,
  checkoutUrlOf,
  eventTypes = EVENT_TYPES,
}: {
  payments: Payments;
  decimals: number;
  maxWholeTokens: bigint;
  /** The event types the daemon raises (postback_events may name these only). */
  eventTypes?: readonly EventType[];
  /** The SSRF guard (src/postbacks); undefined: syntax only. */
  checkUrl?: PostbackUrlCheck | undefined;
  /** The hosted checkout page of a payment, for `checkout_url`. */
  checkoutUrlOf?: ((id: string) => string) | undefined;
}): RpcMethod {
  return {
    name: "start_payment",
    permission: "payments:create",
    async handler(p, { rawParam, log }) {
      if (p.amount === undefined || p.amount === null) {
        throw new InvalidParamsError("missing amount");
      }
      const amount = parseAmount(p.amount, { decimals, maxWholeTokens });
      if (!amount.ok) throw new InvalidParamsError("invalid amount");
      const postbackUrl = optionalUrl(p, "postback_url", "invalid postback URL") ?? null;
      if (postbackUrl !== null && checkUrl) {
        const verdict = await checkUrl(postbackUrl);
        if (!verdict.allowed) {
          log.warn({ reason: verdict.reason }, "start_payment: postback target not allowed");
          throw new InvalidParamsError("invalid postback URL: target not allowed");
        }
      }
      let data: string | null = null;
      if ("data" in p && p.data !== undefined) {
        try {
          data = rawParam("data") ?? JSON.stringify(p.data);
        } catch {
          data = JSON.stringify(p.data);
        }
        if (Buffer.byteLength(data, "utf8") > MAX_DATA_BYTES) {
          throw new InvalidParamsError("data too large");
        }
      }
      const orderId = optionalString(p, "order_id", {
        max: MAX_ORDER_ID_LENGTH,
        reason: "invalid order_id",
      });
      const expiresIn = optionalInteger(p, "expires_in", {
        ...EXPIRES_IN_BOUNDS,
        reason: "invalid expires_in",
      });
      const description = optionalString(p, "description", {
        max: MAX_DESCRIPTION_LENGTH,
        reason: "invalid description",
      });
      const returnUrl = optionalUrl(p, "return_url", "invalid return URL");
      const cancelUrl = optionalUrl(p, "cancel_url", "invalid cancel URL");
      const postbackEvents = optionalEventTypes(p, "postback_events", eventTypes);
      if (postbackEvents !== undefined && postbackUrl === null) {
        throw new InvalidParamsError("postback_events needs a postback_url");
      }
      const networks = optionalNetworks(p, "networks", payments.networks);

      let row: Awaited<ReturnType<Payments["create"]>>;
      try {
        row = await payments.createDurably({
          amount: amount.value,
          data,
          postbackUrl,
          orderId,
          description,
          returnUrl,
          cancelUrl,
          expiresInSeconds: expiresIn,
          postbackEvents,
          networks,
        });
      } catch (error) {
        if (error instanceof OrderIdConflictError) {
          throw new InvalidParamsError("order_id already used with a different amount");
        }
        if (error instanceof ScanNotStartedError) {
          throw new JsonRpcError(SCAN_NOT_STARTED, error.message);
        }
        throw error;
      }
      log.info(
        {
          payment_id: row.id,
          amount: row.amount,
          derivation_index: row.derivation_index,
          ...(orderId === undefined ? {} : { order_id: orderId, created: row.created }),
        },
        row.created ? "payment created" : "payment for this order_id already exists",
      );
      return {
        id: row.id,
        amount: formatAmount(amount.value, decimals),
        address: row.address,
        expires_at: toUnixSeconds(row.expires_at),
        ...(orderId === undefined ? {} : { order_id: orderId }),
        ...(checkoutUrlOf ? { checkout_url: checkoutUrlOf(row.id) } : {}),
        // With `networks`: where the payment may be paid (its own list, for
        // an existing order_id the first call's).
        ...(payments.showNetworks
          ? { networks: acceptedNetworksOf(row) ?? payments.networks }
          : {}),
      };
    },
  };
}
