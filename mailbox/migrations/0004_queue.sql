-- 0004: the outbound queue. One row per message to send to one recipient (a per-recipient package, or a
-- delivery status notification about one), its content encrypted at rest like messages.content, and
-- the delivery state the relay moves it through. Every state change appends a ledger event in the
-- same transaction (mailbox/queue*.go).

CREATE TABLE queue (
    id                TEXT    PRIMARY KEY,   -- opaque queue ID (what `cafgate queue` takes)
    message_id        TEXT    NOT NULL REFERENCES messages(id),  -- the accepted message this is for
    kind              TEXT    NOT NULL CHECK (kind IN ('message', 'dsn')),
    about             TEXT    NOT NULL DEFAULT '',  -- for a DSN: the queue ID and action it reports
    env_from          TEXT    NOT NULL,      -- envelope sender; '' is the null reverse-path (DSNs)
    recipient         TEXT    NOT NULL,
    domain            TEXT    NOT NULL,      -- recipient's domain, lower case: the unit of routing
    header_message_id TEXT    NOT NULL,      -- Message-ID header of the content: recognises duplicates
    state             TEXT    NOT NULL CHECK (state IN ('queued', 'sending', 'held', 'delivered', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,   -- delivery attempts made (a lapsed lease counts)
    lease             INTEGER NOT NULL DEFAULT 0,   -- claims so far: the token a lease holder presents
    next_attempt_at   TEXT    NOT NULL,      -- fixed-width UTC, sorts as text; while sending: lease end
    first_queued_at   TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    delay_warned      INTEGER NOT NULL DEFAULT 0,   -- 1 once a "delayed" DSN was queued for it
    last_host         TEXT    NOT NULL DEFAULT '',
    last_answer       TEXT    NOT NULL DEFAULT '',  -- last SMTP answer or local reason, one line
    size              INTEGER NOT NULL,      -- plaintext bytes
    content_nonce     BLOB,                  -- AES-GCM nonce; NULL once delivered or failed
    content           BLOB,                  -- AES-256-GCM(content key, nonce, plaintext, AAD = queue ID)
    UNIQUE (message_id, recipient, kind, about)
) STRICT;

-- Claim: due rows per destination in due order (a sending row is due again when its lease lapses);
-- the partial index keeps held and finished rows out of it.
CREATE INDEX queue_due ON queue(domain, next_attempt_at) WHERE state IN ('queued', 'sending');
CREATE INDEX queue_state ON queue(state, next_attempt_at);
CREATE INDEX queue_message ON queue(message_id);
