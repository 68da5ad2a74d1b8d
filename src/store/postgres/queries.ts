/**
 * The PostgreSQL queries whose semantics replicas depend on: the
 * derivation counter taken under a row lock, payments unique by order_id,
 * transfers recorded once per (network, tx_hash, log_index), the scan
 * cursor moved by compare-and-set, and postback events claimed with
 * `FOR UPDATE SKIP LOCKED` plus a lease. Rows have the SQLite store's
 * shapes (store/storage.ts). Every function takes the
 * connection (or transaction) to run on; callers own transactions.
 */
import type {
  AttemptRow,
  CursorRow,
  EventRow,
  EventState,
  NewPaymentRow,
  StoredPayment,
  TransferRow,
} from "../storage.ts";
import type { Queryable } from "./index.ts";

/** PostgreSQL's SQLSTATE of a unique violation (an order_id taken by another replica). */
export const UNIQUE_VIOLATION = "23505";

/**
 * Takes the next derivation index. The counter row stays locked until the
 * transaction ends: replicas creating payments at once take indexes one
 * after another, and a rolled-back insert gives its index back (no gap,
 * never used twice).
 */
/** Takes `count` consecutive indexes under the same row lock; returns the first. */
export async function allocateIndexes(db: Queryable, count: number): Promise<number> {
  const { rows } = await db.query<{ value: number }>(
    "UPDATE counters SET value = value + $1 WHERE name = 'derivation_index' RETURNING value - $1 AS value",
    [count],
  );
  const row = rows[0];
  if (!row) throw new Error("derivation counter missing");
  return row.value;
}

export async function allocateIndex(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ value: number }>(
    "UPDATE counters SET value = value + 1 WHERE name = 'derivation_index' RETURNING value - 1 AS value",
  );
  const row = rows[0];
  if (!row) throw new Error("derivation counter missing");
  return row.value;
}

const PAYMENT_COLUMNS = [
  "id",
  "amount",
  "derivation_index",
  "address",
  "data",
  "postback_url",
  "created_at",
  "expires_at",
  "order_id",
  "description",
  "return_url",
  "cancel_url",
  "postback_events",
  "networks",
] as const satisfies ReadonlyArray<keyof NewPaymentRow>;

/**
 * Inserts a payment and returns its whole row. A taken order_id throws the
 * unique violation ({@link UNIQUE_VIOLATION}): the caller rolls back (the
 * index goes back) and returns the existing payment.
 */
export async function insertPayment(db: Queryable, row: NewPaymentRow): Promise<StoredPayment> {
  const values = PAYMENT_COLUMNS.map((column) => row[column]);
  const { rows } = await db.query<StoredPayment>(
    `INSERT INTO payments (${PAYMENT_COLUMNS.join(", ")})
     VALUES (${PAYMENT_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})
     RETURNING *`,
    values,
  );
  return rows[0] as StoredPayment;
}

/**
 * Inserts payments in one statement and returns their rows in the order
 * given. A taken order_id or id throws the unique violation: nothing of
 * the statement is inserted.
 */
export async function insertPayments(
  db: Queryable,
  rows: readonly NewPaymentRow[],
): Promise<StoredPayment[]> {
  if (rows.length === 0) return [];
  const width = PAYMENT_COLUMNS.length;
  const values = rows.flatMap((row) => PAYMENT_COLUMNS.map((column) => row[column]));
  const tuples = rows.map(
    (_, r) => `(${PAYMENT_COLUMNS.map((_, c) => `$${r * width + c + 1}`).join(", ")})`,
  );
  const { rows: inserted } = await db.query<StoredPayment>(
    `INSERT INTO payments (${PAYMENT_COLUMNS.join(", ")}) VALUES ${tuples.join(", ")} RETURNING *`,
    values,
  );
  // NOTE: RETURNING promises no order: put the rows back in the given one.
  const byId = new Map(inserted.map((row) => [row.id, row]));
  return rows.map((row) => byId.get(row.id) as StoredPayment);
}

export async function getPayment(db: Queryable, id: string): Promise<StoredPayment | undefined> {
  const { rows } = await db.query<StoredPayment>("SELECT * FROM payments WHERE id = $1", [id]);
  return rows[0];
}

export async function getPaymentByOrderId(
  db: Queryable,
  orderId: string,
): Promise<StoredPayment | undefined> {
  const { rows } = await db.query<StoredPayment>("SELECT * FROM payments WHERE order_id = $1", [
    orderId,
  ]);
  return rows[0];
}

/** Records a transfer; false if (network, tx_hash, log_index) was already recorded (by anyone). */
export async function insertTransfer(db: Queryable, row: TransferRow): Promise<boolean> {
  const result = await db.query(
    `INSERT INTO transfers
      (network, tx_hash, log_index, block_number, block_hash, from_address, to_address, value,
       payment_id, recorded_at, block_timestamp)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (network, tx_hash, log_index) DO NOTHING`,
    [
      row.network,
      row.tx_hash,
      row.log_index,
      row.block_number,
      row.block_hash,
      row.from_address,
      row.to_address,
      row.value,
      row.payment_id,
      row.recorded_at,
      row.block_timestamp,
    ],
  );
  return result.rowCount === 1;
}

export async function getCursor(db: Queryable, network: string): Promise<CursorRow | undefined> {
  const { rows } = await db.query<CursorRow>(
    "SELECT network, chain_id, token, block_number, block_hash, head_number, updated_at FROM chain_cursor WHERE network = $1",
    [network],
  );
  return rows[0];
}

/** Creates a network's cursor; false if it exists already (another leader created it first). */
export async function createCursor(db: Queryable, row: CursorRow): Promise<boolean> {
  const result = await db.query(
    `INSERT INTO chain_cursor (network, chain_id, token, block_number, block_hash, head_number, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
    [
      row.network,
      row.chain_id,
      row.token,
      row.block_number,
      row.block_hash,
      row.head_number,
      row.updated_at,
    ],
  );
  return result.rowCount === 1;
}

/**
 * Moves `network`'s cursor from block `from` (compare-and-set): false, and
 * nothing changed, if it is no longer there (a deposed leader writing late,
 * a rescan). The caller rolls back the batch that came with it.
 */
export async function moveCursor(
  db: Queryable,
  network: string,
  from: number,
  row: Pick<CursorRow, "block_number" | "block_hash" | "head_number" | "updated_at">,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE chain_cursor SET block_number = $3, block_hash = $4, head_number = $5, updated_at = $6
     WHERE network = $1 AND block_number = $2`,
    [network, from, row.block_number, row.block_hash, row.head_number, row.updated_at],
  );
  return result.rowCount === 1;
}

/** Queues a postback event (in the transaction of the state change that raised it). */
export async function insertEvent(
  db: Queryable,
  row: Pick<EventRow, "id" | "payment_id" | "type" | "url" | "created_at" | "next_attempt_at">,
): Promise<void> {
  await db.query(
    `INSERT INTO events (id, payment_id, type, url, created_at, next_attempt_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [row.id, row.payment_id, row.type, row.url, row.created_at, row.next_attempt_at],
  );
}

/**
 * Claims up to `limit` due events for delivery by this replica until
 * `now + leaseMs`: only the first pending event of each payment (a later
 * one waits for it: per-payment order), none leased by a live claim. Rows
 * another replica is claiming right now are skipped, not waited for
 * (`FOR UPDATE SKIP LOCKED`); a replica that dies mid-delivery loses its
 * claims when their lease runs out. Run it alone in its own transaction
 * (or autocommit), so the lease is visible to the others at once.
 */
export async function claimDueEvents(
  db: Queryable,
  { now, leaseMs, limit }: { now: number; leaseMs: number; limit: number },
): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow & { seq?: number; lease_until?: number | null }>(
    `WITH claimable AS (
       SELECT e.id FROM events AS e
       WHERE e.state = 'pending' AND e.next_attempt_at <= $1
         AND (e.lease_until IS NULL OR e.lease_until <= $1)
         AND NOT EXISTS (SELECT 1 FROM events AS p
           WHERE p.payment_id = e.payment_id AND p.state = 'pending' AND p.seq < e.seq)
       ORDER BY e.next_attempt_at, e.seq
       LIMIT $3
       FOR UPDATE SKIP LOCKED
     )
     UPDATE events SET lease_until = $1 + $2 FROM claimable WHERE events.id = claimable.id
     RETURNING events.*`,
    [now, leaseMs, limit],
  );
  return rows
    .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0))
    .map(({ seq: _seq, lease_until: _lease, ...row }) => row as EventRow);
}

/**
 * Records one delivery attempt and the event's new state, and ends the
 * claim (as the SQLite store's `recordAttempt`: an attempt that started from
 * another `round_attempts` is recorded but changes no state). Run it in
 * one transaction. Returns whether the state was updated.
 */
export async function recordAttempt(
  db: Queryable,
  attempt: Omit<AttemptRow, "id">,
  outcome: {
    state: EventState;
    round_attempts: number;
    next_attempt_at: number;
    delivered_at: number | null;
  },
): Promise<boolean> {
  await db.query(
    `INSERT INTO postback_attempts (event_id, attempted_at, duration_ms, status, error)
     VALUES ($1, $2, $3, $4, $5)`,
    [attempt.event_id, attempt.attempted_at, attempt.duration_ms, attempt.status, attempt.error],
  );
  const result = await db.query(
    `UPDATE events SET state = $2, attempts = attempts + 1, round_attempts = round_attempts + 1,
       next_attempt_at = $3, last_status = $4, last_error = $5, delivered_at = $6, lease_until = NULL
     WHERE id = $1 AND state = 'pending' AND round_attempts = $7`,
    [
      attempt.event_id,
      outcome.state,
      outcome.next_attempt_at,
      attempt.status,
      attempt.error,
      outcome.delivered_at,
      outcome.round_attempts,
    ],
  );
  return result.rowCount === 1;
}

/** The LISTEN/NOTIFY channel on which a commit names the payments it changed. */
export const CHANGES_CHANNEL = "oxbtcpay_changes";

/**
 * What one change notification says: the payments a commit changed and
 * whether a head moved (no id and no head: something was written, nothing
 * named); or `all`: anything may have changed (too much to name).
 */
export type ChangeNotice = { ids: string[]; head: boolean } | { all: true };

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more: each stays under this. */
const NOTICE_BYTES = 7_000;
/** Beyond this many notifications for one commit, one "anything changed" says it cheaper. */
const MAX_NOTICES = 16;

/**
 * The payloads that tell `change` ({@link ChangeNotice} as JSON): the ids
 * split so that each payload stays under PostgreSQL's limit, the head in
 * the first; a single `{"all":true}` when that would take more than
 * {@link MAX_NOTICES} payloads (or an id alone is too long).
 */
export function changePayloads({ ids, head }: { ids: readonly string[]; head: boolean }): string[] {
  const all = JSON.stringify({ all: true } satisfies ChangeNotice);
  const payloads: string[] = [];
  let chunk: string[] = [];
  let bytes = 0;
  const flush = () => {
    const notice: ChangeNotice = { ids: chunk, head: head && payloads.length === 0 };
    payloads.push(JSON.stringify(notice));
    chunk = [];
    bytes = 0;
  };
  for (const id of new Set(ids)) {
    const size = Buffer.byteLength(JSON.stringify(id)) + 1;
    if (size > NOTICE_BYTES) return [all];
    if (bytes + size > NOTICE_BYTES) flush();
    chunk.push(id);
    bytes += size;
  }
  if (chunk.length > 0 || payloads.length === 0) flush();
  return payloads.length > MAX_NOTICES ? [all] : payloads;
}

/**
 * Reads a payload of {@link CHANGES_CHANNEL}; one it cannot read (another
 * version's, say) says `all`, so that the listener refetches rather than
 * misses a change.
 */
export function parseChangePayload(payload: string): ChangeNotice {
  try {
    const value: unknown = JSON.parse(payload);
    if (typeof value === "object" && value !== null) {
      const { ids, head } = value as { ids?: unknown; head?: unknown };
      if (
        Array.isArray(ids) &&
        ids.every((id) => typeof id === "string") &&
        typeof head === "boolean"
      ) {
        return { ids, head };
      }
    }
  } catch {
    // Not JSON: below.
  }
  return { all: true };
}

/**
 * Tells every replica listening on {@link CHANGES_CHANNEL} that `ids`
 * changed (and, with `head`, that a head moved). Inside a transaction the
 * notifications are sent at its commit, and not at all if it rolls back.
 * A nudge only: listeners read the rows.
 */
export async function notifyChanged(
  db: Queryable,
  change: { ids: readonly string[]; head: boolean },
): Promise<void> {
  for (const payload of changePayloads(change)) {
    await db.query("SELECT pg_notify($1, $2)", [CHANGES_CHANNEL, payload]);
  }
}
