-- 0005: hosted IMAP mailboxes. A hosted practitioner (imap_users) has folders (imap_mailboxes: INBOX
-- and the special-use folders made at first sign-in, plus their own); each message in a folder
-- (imap_messages) points at one stored copy (imap_contents), so COPY shares it instead of storing it
-- twice. Content is encrypted at rest like messages.content; the header is sealed apart so that
-- listing a folder (ENVELOPE, header fields) does not decrypt whole messages. When the last message
-- pointing at a copy is expunged, its content is purged and its metadata row kept: it still answers
-- "was this delivered already?" (delivery_key) and "which package is this read receipt about?"
-- (header_message_id). Every delivery writes its "delivered" ledger event in the same transaction.

CREATE TABLE imap_users (
    id               INTEGER PRIMARY KEY,
    mail             TEXT    NOT NULL UNIQUE,  -- lower case
    created_at       TEXT    NOT NULL,
    last_uidvalidity INTEGER NOT NULL DEFAULT 0 -- the last UIDVALIDITY given to one of its folders
) STRICT;

CREATE TABLE imap_mailboxes (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES imap_users(id),
    name         TEXT    NOT NULL,             -- UTF-8, levels separated by '/', INBOX in upper case
    special_use  TEXT    NOT NULL DEFAULT ''
                 CHECK (special_use IN ('', '\Sent', '\Drafts', '\Trash', '\Junk', '\Archive')),
    uid_validity INTEGER NOT NULL CHECK (uid_validity > 0),
    uid_next     INTEGER NOT NULL DEFAULT 1 CHECK (uid_next > 0),
    subscribed   INTEGER NOT NULL DEFAULT 1 CHECK (subscribed IN (0, 1)),
    changes      INTEGER NOT NULL DEFAULT 0,   -- counts every change; open sessions compare it to see updates
    created_at   TEXT    NOT NULL,
    UNIQUE (user_id, name)
) STRICT;

CREATE UNIQUE INDEX imap_mailboxes_special ON imap_mailboxes(user_id, special_use) WHERE special_use <> '';

CREATE TABLE imap_contents (
    id                TEXT    PRIMARY KEY,     -- random; bound into the additional data of both seals
    user_id           INTEGER NOT NULL REFERENCES imap_users(id),
    message_id        TEXT,                    -- for a delivery: the accepted message (messages.id) it is a copy of
    header_message_id TEXT    NOT NULL DEFAULT '', -- the Message-ID header in angle brackets (as queue.header_message_id)
    delivery_key      TEXT,                    -- for a delivery: what makes it unique for this user; NULL for APPEND
    size              INTEGER NOT NULL,        -- plaintext bytes
    header_nonce      BLOB,                    -- NULL once purged
    header            BLOB,                    -- AES-256-GCM(content key, nonce, header section, AAD = prefix, id, "header")
    content_nonce     BLOB,
    content           BLOB,                    -- AES-256-GCM(content key, nonce, whole message, AAD = prefix, id, "content")
    created_at        TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX imap_contents_delivery ON imap_contents(user_id, delivery_key) WHERE delivery_key IS NOT NULL;
CREATE INDEX imap_contents_header_id ON imap_contents(header_message_id, user_id) WHERE header_message_id <> '';

CREATE TABLE imap_messages (
    mailbox_id    INTEGER NOT NULL REFERENCES imap_mailboxes(id),
    uid           INTEGER NOT NULL CHECK (uid > 0),
    content_id    TEXT    NOT NULL REFERENCES imap_contents(id),
    flags         TEXT    NOT NULL DEFAULT '', -- space-separated; system flags in their canonical case
    internal_date TEXT    NOT NULL,            -- fixed-width UTC
    PRIMARY KEY (mailbox_id, uid)
) STRICT, WITHOUT ROWID;

CREATE INDEX imap_messages_content ON imap_messages(content_id);
