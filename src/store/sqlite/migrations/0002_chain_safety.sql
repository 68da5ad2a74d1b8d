-- 0002: reorg-safe scanning, expiry by block time, late and reorged payments.

-- Headers of the recent (unfinalized) blocks the watcher scanned: the hash
-- chain a reorg is detected on. Pruned below the finality window.
CREATE TABLE blocks (
  number      INTEGER PRIMARY KEY,
  hash        TEXT    NOT NULL,
  parent_hash TEXT    NOT NULL,
  timestamp   INTEGER NOT NULL
) STRICT;

-- UNIX seconds of the transfer's block: decides whether it came before the
-- payment expired (NULL for rows written before this migration: in time).
ALTER TABLE transfers ADD COLUMN block_timestamp INTEGER;

-- Received after expires_at (block time), in base units.
ALTER TABLE payments ADD COLUMN late_amount TEXT NOT NULL DEFAULT '0';
-- Set when late funds completed an expired payment (it stays expired).
ALTER TABLE payments ADD COLUMN paid_late_at INTEGER;
-- Set when a reorg removed a transfer of an already-paid payment.
ALTER TABLE payments ADD COLUMN reorged_after_paid_at INTEGER;

CREATE INDEX transfers_by_block ON transfers (block_number);
