-- 0004: the merchant API: the shop's order id (idempotent
-- start_payment), checkout fields, cancellation, and newest-first listing.

ALTER TABLE payments ADD COLUMN order_id TEXT;
ALTER TABLE payments ADD COLUMN description TEXT;
ALTER TABLE payments ADD COLUMN return_url TEXT;
ALTER TABLE payments ADD COLUMN cancel_url TEXT;
-- UNIX milliseconds; a cancelled payment never becomes paid.
ALTER TABLE payments ADD COLUMN cancelled_at INTEGER;

-- One payment per order id (NULLs are distinct, so payments without one are unaffected).
CREATE UNIQUE INDEX payments_order_id ON payments (order_id);

-- list_payments: newest first, keyset pagination on (created_at, id).
CREATE INDEX payments_newest ON payments (created_at, id);
