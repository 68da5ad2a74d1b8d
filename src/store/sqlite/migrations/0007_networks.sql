-- 0007: several networks, one deposit address. Each network (a `networks`
-- entry of the config, or the single `chain` section, which is the network
-- named 'ethereum') has its own scan cursor, its own window of recent block
-- headers and its own transfers. Everything written before this migration
-- was written for the single chain: it becomes network 'ethereum'.

-- The scan cursor: one row per network. `id` stays the rowid; each network
-- and each chain id has one row (a network renamed in the config would
-- otherwise scan its chain a second time).
CREATE TABLE chain_cursor_0007 (
  id           INTEGER PRIMARY KEY,
  network      TEXT    NOT NULL UNIQUE,
  chain_id     INTEGER NOT NULL UNIQUE,
  token        TEXT    NOT NULL,
  block_number INTEGER NOT NULL,
  block_hash   TEXT,
  head_number  INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) STRICT;
INSERT INTO chain_cursor_0007
  (id, network, chain_id, token, block_number, block_hash, head_number, updated_at)
  SELECT id, 'ethereum', chain_id, token, block_number, block_hash, head_number, updated_at
  FROM chain_cursor;
DROP TABLE chain_cursor;
ALTER TABLE chain_cursor_0007 RENAME TO chain_cursor;

-- Recent headers, per network: block numbers of two chains are unrelated.
CREATE TABLE blocks_0007 (
  network     TEXT    NOT NULL,
  number      INTEGER NOT NULL,
  hash        TEXT    NOT NULL,
  parent_hash TEXT    NOT NULL,
  timestamp   INTEGER NOT NULL,
  PRIMARY KEY (network, number)
) STRICT, WITHOUT ROWID;
INSERT INTO blocks_0007 (network, number, hash, parent_hash, timestamp)
  SELECT 'ethereum', number, hash, parent_hash, timestamp FROM blocks;
DROP TABLE blocks;
ALTER TABLE blocks_0007 RENAME TO blocks;

-- Transfers, keyed by network too: a transaction without a chain id
-- (pre-EIP-155) has the same hash on every chain it is replayed on.
-- DEFAULT 'ethereum': a row written without a network is the single chain's.
CREATE TABLE transfers_0007 (
  tx_hash         TEXT    NOT NULL,
  log_index       INTEGER NOT NULL,
  block_number    INTEGER NOT NULL,
  block_hash      TEXT    NOT NULL,
  from_address    TEXT    NOT NULL,
  to_address      TEXT    NOT NULL,
  value           TEXT    NOT NULL,
  payment_id      TEXT    NOT NULL REFERENCES payments (id),
  recorded_at     INTEGER NOT NULL,
  block_timestamp INTEGER,
  network         TEXT    NOT NULL DEFAULT 'ethereum',
  PRIMARY KEY (network, tx_hash, log_index)
) STRICT;
INSERT INTO transfers_0007
  (tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id,
   recorded_at, block_timestamp, network)
  SELECT tx_hash, log_index, block_number, block_hash, from_address, to_address, value, payment_id,
    recorded_at, block_timestamp, 'ethereum'
  FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_0007 RENAME TO transfers;
CREATE INDEX transfers_by_payment ON transfers (payment_id, block_number, log_index);
-- A reorg's rewind on one network: its transfers above a block.
CREATE INDEX transfers_by_block ON transfers (network, block_number);

-- The networks the shop accepts for the payment (start_payment `networks`),
-- a JSON array of names; NULL: every network the daemon watches.
ALTER TABLE payments ADD COLUMN networks TEXT;
-- The network of tx_hash (the transfer that completed the payment).
ALTER TABLE payments ADD COLUMN network TEXT;
-- The network of block_number (the transfer confirmations are counted from).
ALTER TABLE payments ADD COLUMN block_network TEXT;
-- Received on networks the payment does not accept, in base units: never counted.
ALTER TABLE payments ADD COLUMN wrong_network_amount TEXT NOT NULL DEFAULT '0';
UPDATE payments SET network = 'ethereum' WHERE tx_hash IS NOT NULL;
UPDATE payments SET block_network = 'ethereum' WHERE block_number IS NOT NULL;
