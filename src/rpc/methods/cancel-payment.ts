import type { Clock } from "../../internal/clock.ts";
import { cancelPayment } from "../../payments/cancel.ts";
import { PaymentAlreadyPaidError, PaymentNotFoundError } from "../../payments/errors.ts";
import type { Payments } from "../../payments/index.ts";
import { InvalidParamsError } from "../jsonrpc.ts";
import { paymentId } from "../params.ts";
import { paymentJson } from "../payment-json.ts";
import type { RpcMethod } from "../registry.ts";

/**
 * `cancel_payment` {id}: status "cancelled" for a payment not yet paid;
 * idempotent. Returns the full payment, as get_payment.
 */
export function cancelPaymentMethod({
  payments,
  clock,
}: {
  payments: Payments;
  clock: Pick<Clock, "now">;
}): RpcMethod {
  return {
    name: "cancel_payment",
    permission: "payments:cancel",
    handler(p, { log }) {
      const id = paymentId(p);
      try {
        const row = cancelPayment({ payments, clock, id });
        log.info({ payment_id: id }, "payment cancelled");
        return paymentJson({ payments, row });
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
