-- 0001: accepted messages (content encrypted), their recipients with per-recipient state, the
-- append-only ledger, and settings. Later migrations add packages, the queue, episodes.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE messages (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    sender        TEXT    NOT NULL,
    sender_dn     TEXT    NOT NULL,
    agency        TEXT    NOT NULL,
    via           TEXT    NOT NULL,
    remote_addr   TEXT    NOT NULL,
    received_at   TEXT    NOT NULL,  -- RFC 3339 UTC, fixed width
    accepted_at   TEXT    NOT NULL,  -- commit batch time
    size          INTEGER NOT NULL,  -- plaintext bytes
    digest        TEXT    NOT NULL,  -- SHA-256 of the plaintext, lower-case hex
    content_nonce BLOB,              -- AES-GCM nonce; NULL once content is purged
    content       BLOB               -- AES-256-GCM(content key, nonce, plaintext, AAD = message ID)
) STRICT;

CREATE TABLE recipients (
    message_id TEXT    NOT NULL REFERENCES messages(id),
    ord        INTEGER NOT NULL,     -- order given at submission
    rcpt       TEXT    NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'pending',
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (message_id, rcpt)
) STRICT, WITHOUT ROWID;

CREATE INDEX recipients_state ON recipients(state, message_id);

CREATE TABLE ledger_events (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    type       TEXT NOT NULL,
    message_id TEXT,
    data       TEXT NOT NULL          -- JSON; never content, never subject
) STRICT;

CREATE INDEX ledger_events_message ON ledger_events(message_id, seq);

CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
BEGIN
    SELECT RAISE(ABORT, 'ledger_events is append-only');
END;

CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
BEGIN
    SELECT RAISE(ABORT, 'ledger_events is append-only');
END;
