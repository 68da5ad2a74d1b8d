import { randomBytes } from "node:crypto";

/** A payment id: 16 lowercase hex characters from a CSPRNG, as the original 0xBTCpay. */
export type IdGenerator = () => string;

export const PAYMENT_ID_PATTERN = /^[0-9a-f]{16}$/;

/** Random bytes drawn at once and handed out 8 at a time: one CSPRNG call per 512 ids. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = POOL_BYTES;

export const generatePaymentId: IdGenerator = () => {
  if (offset + 8 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const id = pool.toString("hex", offset, offset + 8);
  offset += 8;
  return id;
};
