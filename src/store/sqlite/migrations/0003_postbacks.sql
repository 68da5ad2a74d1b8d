-- 0003: postback retries and redelivery.
-- `attempts` keeps counting every attempt ever made; `round_attempts` counts
-- the attempts since the event was queued or last re-queued by an operator,
-- and indexes the retry schedule. `payload` is the body as first sent, so
-- retries and redeliveries carry the same bytes under the same webhook-id.

ALTER TABLE events ADD COLUMN round_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN payload TEXT;
ALTER TABLE events ADD COLUMN requeued_at INTEGER;

-- Per-payment ordering: "is an earlier event of this payment still pending?"
CREATE INDEX events_pending_by_payment ON events (payment_id) WHERE state = 'pending';
