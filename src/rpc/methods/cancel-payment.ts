import { PaymentAlreadyPaidError, PaymentNotFoundError } from "../../payments/errors.ts";
import type { PaymentDetail, Payments } from "../../payments/index.ts";
import { InvalidParamsError } from "../jsonrpc.ts";
import { paymentId } from "../params.ts";
import type { PaymentJson } from "../payment-json.ts";
import type { RpcMethod } from "../registry.ts";

/**
 * `cancel_payment` {id}: status "cancelled" for a payment not yet paid;
 * idempotent. Returns the full payment, as get_payment.
 */
export function cancelPaymentMethod({
  payments,
  paymentJson,
}: {
  payments: Payments;
  paymentJson: PaymentJson;
}): RpcMethod {
  return {
    name: "cancel_payment",
    permission: "payments:cancel",
    async handler(p, { log }) {
      const id = paymentId(p);
      try {
        const row = await payments.cancel(id);
        log.info({ payment_id: id }, "payment cancelled");
        return paymentJson((await payments.details([row]))[0] as PaymentDetail);
      } catch (error) {
        if (error instanceof PaymentNotFoundError)
          throw new InvalidParamsError("payment not found");
        if (error instanceof PaymentAlreadyPaidError) {
          throw new InvalidParamsError("payment already paid");
        }
        throw error;
      }
    },
  };
}
