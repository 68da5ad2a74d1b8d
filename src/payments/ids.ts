import { randomBytes } from "node:crypto";

/** A payment id: 16 lowercase hex characters from a CSPRNG, as the original 0xBTCpay. */
export type IdGenerator = () => string;

export const PAYMENT_ID_PATTERN = /^[0-9a-f]{16}$/;

export const generatePaymentId: IdGenerator = () => randomBytes(8).toString("hex");
