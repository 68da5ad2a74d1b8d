/**
 * The private port's built-in methods. Another module's method (e.g.
 * `resend_postback` from src/postbacks) joins as one more entry, through
 * createPrivateApp's `extraMethods` or this list.
 */
import type { Clock } from "../../internal/clock.ts";
import type { Payments } from "../../payments/index.ts";
import type { RpcMethod } from "../registry.ts";
import { cancelPaymentMethod } from "./cancel-payment.ts";
import { getPaymentMethod } from "./get-payment.ts";
import { listPaymentsMethod } from "./list-payments.ts";
import { startPaymentMethod } from "./start-payment.ts";

/** start_payment, get_payment, list_payments, cancel_payment. */
export function builtinMethods({
  payments,
  clock,
  decimals,
  maxWholeTokens,
}: {
  payments: Payments;
  clock: Pick<Clock, "now">;
  decimals: number;
  maxWholeTokens: bigint;
}): RpcMethod[] {
  return [
    startPaymentMethod({ payments, decimals, maxWholeTokens }),
    getPaymentMethod({ payments }),
    listPaymentsMethod({ payments, clock }),
    cancelPaymentMethod({ payments, clock }),
    // resend_postback ("postbacks:resend") goes here, or comes in through `extraMethods`.
  ];
}
