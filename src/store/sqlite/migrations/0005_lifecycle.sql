-- 0005: the lifecycle stored in the row. `status` is written only by the
-- payment logic (src/payments/), in the transaction of its cause; every
-- reader (get_payment, list_payments, status.json, postbacks, the CLI) reads
-- it instead of re-deriving it.

ALTER TABLE payments ADD COLUMN status TEXT NOT NULL DEFAULT 'waiting'
  CHECK (status IN ('waiting', 'seen', 'paid', 'expired', 'cancelled'));

-- The postback events the shop opted in to for this payment, as a JSON array
-- of event types; NULL: the daemon's postbacks.events (default: payment.paid).
ALTER TABLE payments ADD COLUMN postback_events TEXT;

-- Rows written before this migration, by the same rule as
-- src/payments/lifecycle.ts. Deadlines already past are applied here, with
-- no event: those payments ended before events existed, and a shop that
-- opts in later must not get an "expired" postback for each old order.
-- (Amounts fit int64: the token's supply is about 2.1e15 base units.)
UPDATE payments SET status = CASE
  WHEN paid_at IS NOT NULL THEN 'paid'
  WHEN cancelled_at IS NOT NULL THEN 'cancelled'
  WHEN expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER)
    AND CAST(paid_amount AS INTEGER) - CAST(late_amount AS INTEGER) < CAST(amount AS INTEGER)
    THEN 'expired'
  WHEN seen_at IS NOT NULL THEN 'seen'
  ELSE 'waiting'
END;

-- list_payments {status}: newest first within a status.
CREATE INDEX payments_by_status ON payments (status, created_at, id);

-- The deadline sweep: open payments by deadline.
CREATE INDEX payments_open_deadlines ON payments (expires_at) WHERE status IN ('waiting', 'seen');

-- Payments that a new head can change: fully received (CAST saturates at
-- int64, which only errs towards re-evaluating), not yet paid or flagged paid
-- late. The store's query repeats this condition word for word, so SQLite
-- uses the index. Replaces the index on seen_at/paid_at.
DROP INDEX payments_confirming;
CREATE INDEX payments_confirming ON payments (id)
  WHERE status IN ('seen', 'expired', 'cancelled') AND paid_late_at IS NULL
    AND CAST(paid_amount AS INTEGER) >= CAST(amount AS INTEGER);
