import { PAYMENT_STATUSES, type PaymentStatus, type Payments } from "../../payments/index.ts";
import { decodeCursor } from "../../payments/list.ts";
import { InvalidParamsError } from "../jsonrpc.ts";
import { optionalInteger, optionalString } from "../params.ts";
import type { PaymentJson } from "../payment-json.ts";
import type { RpcMethod } from "../registry.ts";

/** Largest `limit` of one list_payments page. */
export const MAX_LIST_LIMIT = 1000;
/** Page size when `limit` is not given. */
export const DEFAULT_LIST_LIMIT = 100;

/**
 * `list_payments` {status?, since?, limit?, cursor?}: payments newest first,
 * `{payments, next_cursor}`; pass `next_cursor` back as `cursor` for the
 * next page, until it is null.
 */
export function listPaymentsMethod({
  payments,
  paymentJson,
}: {
  payments: Payments;
  paymentJson: PaymentJson;
}): RpcMethod {
  return {
    name: "list_payments",
    permission: "payments:read",
    async handler(p) {
      const status = optionalString(p, "status", { max: 16, reason: "invalid status" });
      if (status !== undefined && !PAYMENT_STATUSES.includes(status as PaymentStatus)) {
        throw new InvalidParamsError("invalid status");
      }
      const since = optionalInteger(p, "since", {
        min: 0,
        max: 100_000_000_000,
        reason: "invalid since",
      });
      const limit =
        optionalInteger(p, "limit", { min: 1, max: MAX_LIST_LIMIT, reason: "invalid limit" }) ??
        DEFAULT_LIST_LIMIT;
      const cursor = optionalString(p, "cursor", { max: 64, reason: "invalid cursor" });
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      if (cursor !== undefined && after === undefined)
        throw new InvalidParamsError("invalid cursor");
      const page = await payments.list({
        status: status as PaymentStatus | undefined,
        sinceMs: since === undefined ? undefined : since * 1000,
        limit,
        after,
      });
      return {
        payments: page.payments.map(paymentJson),
        next_cursor: page.nextCursor ?? null,
      };
    },
  };
}
