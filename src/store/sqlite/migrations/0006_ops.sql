-- 0006: operations. /metrics reports the age of the oldest undelivered
-- postback on every scrape; this index of the pending events by the time
-- they started waiting (raised, or re-queued by an operator) answers it
-- with one index lookup instead of a read of every pending row. The
-- store's query repeats the expression word for word, so SQLite uses it.
CREATE INDEX events_pending_since ON events (coalesce(requeued_at, created_at))
  WHERE state = 'pending';
