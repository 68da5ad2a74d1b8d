-- The deadline sweep works off overdue payments a batch at a time, oldest
-- first (payments/deadlines.ts): each batch starts after the last payment of
-- the one before, by (expires_at, id). With id in the index, a batch is one
-- range of it however many payments share a deadline, and payments that stay
-- open after the sweep (still confirming) are passed over.
DROP INDEX payments_open_deadlines;
CREATE INDEX payments_open_deadlines ON payments (expires_at, id) WHERE status IN ('waiting', 'seen');
