-- 0001: payments, transfers, scan cursor, derivation counter, postback outbox.
-- Amounts are base units written as decimal TEXT (a transfer's uint256 may
-- not fit SQLite's int64); times are UNIX milliseconds.

CREATE TABLE payments (
  id               TEXT    PRIMARY KEY CHECK (length(id) = 16),
  amount           TEXT    NOT NULL,
  derivation_index INTEGER NOT NULL UNIQUE,
  address          TEXT    NOT NULL UNIQUE,
  data             TEXT,
  postback_url     TEXT,
  created_at       INTEGER NOT NULL,
  expires_at       INTEGER NOT NULL,
  seen_at          INTEGER,
  paid_at          INTEGER,
  tx_hash          TEXT,
  block_number     INTEGER,
  paid_amount      TEXT    NOT NULL DEFAULT '0'
) STRICT;

-- Payments with money on the way: re-evaluated on every new head.
CREATE INDEX payments_confirming ON payments (id) WHERE seen_at IS NOT NULL AND paid_at IS NULL;

CREATE TABLE transfers (
  tx_hash      TEXT    NOT NULL,
  log_index    INTEGER NOT NULL,
  block_number INTEGER NOT NULL,
  block_hash   TEXT    NOT NULL,
  from_address TEXT    NOT NULL,
  to_address   TEXT    NOT NULL,
  value        TEXT    NOT NULL,
  payment_id   TEXT    NOT NULL REFERENCES payments (id),
  recorded_at  INTEGER NOT NULL,
  PRIMARY KEY (tx_hash, log_index)
) STRICT;

CREATE INDEX transfers_by_payment ON transfers (payment_id, block_number, log_index);

-- One row: the last block whose logs are fully recorded, and the last head seen.
CREATE TABLE chain_cursor (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  chain_id     INTEGER NOT NULL,
  token        TEXT    NOT NULL,
  block_number INTEGER NOT NULL,
  block_hash   TEXT,
  head_number  INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE counters (
  name  TEXT    PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT;

INSERT INTO counters (name, value) VALUES ('derivation_index', 0);

-- Outbox: written in the same transaction as the state change that causes it.
CREATE TABLE events (
  id              TEXT    PRIMARY KEY,
  payment_id      TEXT    NOT NULL REFERENCES payments (id),
  type            TEXT    NOT NULL,
  url             TEXT    NOT NULL,
  created_at      INTEGER NOT NULL,
  state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_status     INTEGER,
  last_error      TEXT,
  delivered_at    INTEGER
) STRICT;

CREATE INDEX events_due ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX events_by_payment ON events (payment_id, created_at);

CREATE TABLE postback_attempts (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id     TEXT    NOT NULL REFERENCES events (id),
  attempted_at INTEGER NOT NULL,
  duration_ms  INTEGER NOT NULL,
  status       INTEGER,
  error        TEXT
) STRICT;

CREATE INDEX postback_attempts_by_event ON postback_attempts (event_id, id);
