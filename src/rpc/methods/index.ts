/**
 * The private port's built-in methods. Another module's method joins as one
 * more entry, through the private port's `extraMethods` option or this list.
 */
import { eventTypesOf, type Payments } from "../../payments/index.ts";
import { createPaymentJson } from "../payment-json.ts";
import type { RpcMethod } from "../registry.ts";
import { cancelPaymentMethod } from "./cancel-payment.ts";
import { getPaymentMethod } from "./get-payment.ts";
import { listPaymentsMethod } from "./list-payments.ts";
import { resendPostbackMethod } from "./resend-postback.ts";
import { type PostbackUrlCheck, startPaymentMethod } from "./start-payment.ts";

/** What the private port needs from src/postbacks. */
export type PostbackControl = {
  /** The SSRF guard's verdict on a postback URL (resolves its host). */
  checkUrl: PostbackUrlCheck;
  /** Re-queues an event (event id) or a payment's events (payment id); returns their ids. */
  resend(id: string): Promise<string[]>;
};

/** start_payment, get_payment, list_payments, cancel_payment, and resend_postback with `postbacks`. */
export function builtinMethods({
  payments,
  decimals,
  maxWholeTokens,
  postbacks,
  checkoutUrlOf,
}: {
  payments: Payments;
  decimals: number;
  maxWholeTokens: bigint;
  postbacks?: PostbackControl | undefined;
  /** The hosted checkout page of a payment; undefined: no `checkout_url` in results. */
  checkoutUrlOf?: ((id: string) => string) | undefined;
}): RpcMethod[] {
  const paymentJson = createPaymentJson(checkoutUrlOf);
  return [
    startPaymentMethod({
      payments,
      decimals,
      maxWholeTokens,
      checkUrl: postbacks?.checkUrl,
      checkoutUrlOf,
      eventTypes: eventTypesOf({ networks: payments.showNetworks }),
    }),
    getPaymentMethod({ payments, paymentJson }),
    listPaymentsMethod({ payments, paymentJson }),
    cancelPaymentMethod({ payments, paymentJson }),
    ...(postbacks ? [resendPostbackMethod({ resend: postbacks.resend })] : []),
  ];
}
