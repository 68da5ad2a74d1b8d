/**
 * Newest-first listing of payments with an opaque keyset cursor (merchant
 * API's list_payments): stable while payments are added, each once. The
 * status filter reads the stored status (an indexed column).
 */
import type {
  ListPosition,
  PaymentQueries,
  PaymentStatus,
  StoredPayment,
} from "../store/storage.ts";

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

export type ListQuery = {
  status?: PaymentStatus | undefined;
  /** Only payments created at or after this time (UNIX ms). */
  sinceMs?: number | undefined;
  limit: number;
  after?: ListPosition | undefined;
};

/**
 * One page of payments, newest first ((created_at, id) descending), in one
 * query. `nextCursor` is undefined on the last page.
 */
export async function listPayments(
  store: PaymentQueries,
  { status, sinceMs, limit, after }: ListQuery,
): Promise<{ rows: StoredPayment[]; nextCursor: string | undefined }> {
  const scanned = await store.listPayments({ after, limit: limit + 1, status, since: sinceMs });
  const rows = scanned.slice(0, limit);
  const last = rows[rows.length - 1];
  return { rows, nextCursor: scanned.length > limit && last ? encodeCursor(last) : undefined };
}
