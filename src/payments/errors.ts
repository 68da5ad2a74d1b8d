/**
 * Errors of the merchant API's payment operations, with stable codes. The
 * private port turns them into "Invalid params: …" messages.
 */
import { BaseError } from "../internal/errors.ts";

/** start_payment reused an order id with another amount. */
export class OrderIdConflictError extends BaseError {
  static override code = "ORDER_ID_CONFLICT";
  constructor(orderId: string) {
    super(`order id ${JSON.stringify(orderId)} already used with a different amount`);
  }
}

/** No payment has this id (or order id). */
export class PaymentNotFoundError extends BaseError {
  static override code = "PAYMENT_NOT_FOUND";
}

/** The payment is paid: it can no longer be cancelled. */
export class PaymentAlreadyPaidError extends BaseError {
  static override code = "PAYMENT_ALREADY_PAID";
}

/** `rescan` was asked for blocks it must not move the scan to (nothing was changed). */
export class RescanError extends BaseError {
  static override code = "RESCAN";
}

/**
 * A payment cannot be created yet: the chain watchers have not read the
 * chain once (a first start, or a new network), so a transfer to a new
 * address could land below where the scan will begin. Retrying later works.
 */
export class ScanNotStartedError extends BaseError {
  static override code = "SCAN_NOT_STARTED";
}
