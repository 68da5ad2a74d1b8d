import type { PaymentDetail, Payments } from "../../payments/index.ts";
import { InvalidParamsError } from "../jsonrpc.ts";
import { optionalString, paymentId } from "../params.ts";
import type { PaymentJson } from "../payment-json.ts";
import type { RpcMethod } from "../registry.ts";
import { MAX_ORDER_ID_LENGTH } from "./start-payment.ts";

/** `get_payment` {id} or {order_id}: the full payment (status.json's fields and the private ones). */
export function getPaymentMethod({
  payments,
  paymentJson,
}: {
  payments: Payments;
  paymentJson: PaymentJson;
}): RpcMethod {
  return {
    name: "get_payment",
    permission: "payments:read",
    async handler(p) {
      const byId = p.id !== undefined && p.id !== null;
      const orderId = optionalString(p, "order_id", {
        max: MAX_ORDER_ID_LENGTH,
        reason: "invalid order_id",
      });
      if (byId && orderId !== undefined)
        throw new InvalidParamsError("give id or order_id, not both");
      if (!byId && orderId === undefined) throw new InvalidParamsError("missing id or order_id");
      const row = byId
        ? await payments.get(paymentId(p))
        : await payments.getByOrderId(orderId as string);
      if (!row) throw new InvalidParamsError("payment not found");
      return paymentJson((await payments.details([row]))[0] as PaymentDetail);
    },
  };
}
