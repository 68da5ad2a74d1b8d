/**
 * Newest-first listing of payments with an opaque keyset cursor (merchant
 * API's list_payments): stable while payments are added, each once.
 */
import type { ListPosition, PaymentRow } from "../store/payments.ts";
import type { PaymentStatus, Payments } from "./index.ts";

/** Every status a payment can have, as list_payments accepts them. */
export const PAYMENT_STATUSES: readonly PaymentStatus[] = [
  "waiting",
  "seen",
  "paid",
  "expired",
  "cancelled",
];

// NOTE: these mirror status() in ./index.ts (paid, then cancelled, then
// expired unless fully received, then seen/waiting); rows are re-checked
// with status() below, so a rule changed only there is never listed wrongly.
const RECEIVED = "CAST(paid_amount AS INTEGER) >= CAST(amount AS INTEGER)";
const OPEN = "paid_at IS NULL AND cancelled_at IS NULL";
const EXPIRED = `@now >= expires_at AND NOT ${RECEIVED}`;
const STATUS_SQL: Record<PaymentStatus, string> = {
  paid: "paid_at IS NOT NULL",
  cancelled: "paid_at IS NULL AND cancelled_at IS NOT NULL",
  expired: `${OPEN} AND ${EXPIRED}`,
  seen: `${OPEN} AND seen_at IS NOT NULL AND NOT (${EXPIRED})`,
  waiting: `${OPEN} AND seen_at IS NULL AND NOT (${EXPIRED})`,
};

/** The opaque cursor for "after this row": base64url of "<created_at ms>.<id>". */
export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.created_at}.${position.id}`, "utf8").toString("base64url");
}

/** The position a cursor stands for; undefined if it is not one of ours. */
export function decodeCursor(cursor: string): ListPosition | undefined {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cursor)) return undefined;
  const match = /^([0-9]{1,15})\.([0-9a-f]{16})$/.exec(
    Buffer.from(cursor, "base64url").toString("utf8"),
  );
  if (!match) return undefined;
  return { created_at: Number(match[1]), id: match[2] ?? "" };
}

/**
 * One page of payments, newest first ((created_at, id) descending).
 * `nextCursor` is undefined on the last page. A page may hold fewer than
 * `limit` rows while more follow (rows re-checked away by status()).
 */
export function listPayments({
  payments,
  now,
  status,
  sinceMs,
  limit,
  after,
}: {
  payments: Payments;
  now: number;
  status?: PaymentStatus | undefined;
  /** Only payments created at or after this time (UNIX ms). */
  sinceMs?: number | undefined;
  limit: number;
  after?: ListPosition | undefined;
}): { rows: PaymentRow[]; nextCursor: string | undefined } {
  const conditions: string[] = [];
  if (status !== undefined) conditions.push(STATUS_SQL[status]);
  if (sinceMs !== undefined) conditions.push("created_at >= @since");
  const scanned = payments.store.listPayments({
    after,
    limit: limit + 1,
    where: conditions.length > 0 ? conditions.join(" AND ") : "1",
    params: { now, since: sinceMs ?? 0 },
  });
  const page = scanned.slice(0, limit);
  const last = page[page.length - 1];
  return {
    rows: status === undefined ? page : page.filter((row) => payments.status(row) === status),
    nextCursor: scanned.length > limit && last ? encodeCursor(last) : undefined,
  };
}
