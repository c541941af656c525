-- 0002: the tamper-evident ledger. Each event is a leaf of an RFC 9162 Merkle tree: its row holds the
-- canonical event bytes, their leaf hash and the hashes of the perfect subtrees the leaf completes, so
-- an append is one row and an inclusion proof is O(log n) rows. ledger_head holds the tree's right edge
-- for appends. Signed checkpoints are kept here and in a file outside the database.
-- at, type, message_id and data are computed from the hashed bytes, so they cannot disagree with them.
-- Events of the 0001 table are moved into the new one (and the old table dropped) by the store when it
-- opens, because their hashes are computed in Go.

DROP TRIGGER ledger_events_no_update;
DROP TRIGGER ledger_events_no_delete;
DROP INDEX ledger_events_message;
ALTER TABLE ledger_events RENAME TO ledger_events_v0;

CREATE TABLE ledger_events (
    seq        INTEGER PRIMARY KEY,  -- event number = leaf index, from 0, without gaps
    event      TEXT NOT NULL,        -- the canonical event (JSON): the bytes the leaf hash covers
    leaf       BLOB NOT NULL,        -- SHA-256(0x00 || event)
    nodes      BLOB NOT NULL,        -- roots of the subtrees this leaf completes, level 1 upwards, 32 bytes each
    at         TEXT GENERATED ALWAYS AS (json_extract(event, '$.at')) VIRTUAL,
    type       TEXT GENERATED ALWAYS AS (json_extract(event, '$.type')) VIRTUAL,
    message_id TEXT GENERATED ALWAYS AS (json_extract(event, '$.package')) VIRTUAL,
    data       TEXT GENERATED ALWAYS AS (json_extract(event, '$.data')) VIRTUAL
) STRICT;

CREATE INDEX ledger_events_message ON ledger_events(message_id, seq) WHERE message_id IS NOT NULL;

CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
BEGIN
    SELECT RAISE(ABORT, 'ledger_events is append-only');
END;

CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
BEGIN
    SELECT RAISE(ABORT, 'ledger_events is append-only');
END;

CREATE TABLE ledger_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,           -- events in the tree
    edge BLOB    NOT NULL            -- roots of its perfect subtrees, largest first, 32 bytes each
) STRICT;

INSERT INTO ledger_head (id, size, edge) VALUES (1, 0, x'');

CREATE TABLE ledger_checkpoints (
    id   INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,           -- tree size (events covered)
    root BLOB    NOT NULL,           -- tree head
    at   TEXT    NOT NULL,           -- when it was signed
    note TEXT    NOT NULL            -- the signed note (C2SP tlog-checkpoint)
) STRICT;

CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'ledger_checkpoints is append-only');
END;

CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'ledger_checkpoints is append-only');
END;
