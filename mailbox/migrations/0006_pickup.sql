-- 0006: one-time links to the pickup page, the second factor (TOTP) of the practitioners who open them,
-- and the sign-in failure counts behind the lock-out. A link's secret is never stored, only its SHA-256;
-- a TOTP secret only encrypted under the content key; an enrolment code only as its SHA-256
-- (mailbox/pickup*.go, mailbox/totp*.go).

CREATE TABLE pickup_links (
    id            TEXT    PRIMARY KEY,          -- opaque link ID ("L" + 16 base32): ledger, CLI; not secret
    secret_hash   BLOB    NOT NULL,             -- SHA-256 of the link's secret part
    message_id    TEXT    NOT NULL REFERENCES messages(id),
    recipient     TEXT    NOT NULL,             -- lower-case mail: the only practitioner who may open it
    episode_ref   TEXT,                          -- so withdrawing the episode's consent revokes it
    state         TEXT    NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,             -- fixed-width UTC, sorts as text
    max_downloads INTEGER NOT NULL CHECK (max_downloads > 0),
    downloads     INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,   -- refused sign-ins through the link since the last unlock
    queue_id      TEXT    NOT NULL DEFAULT '',  -- the notification's queue entry
    opened_at     TEXT,                          -- first sign-in through the link
    ended_at      TEXT,                          -- when it was revoked or expired
    ended_by      TEXT    NOT NULL DEFAULT '',
    end_reason    TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX pickup_links_message ON pickup_links(message_id);
CREATE INDEX pickup_links_recipient ON pickup_links(recipient, state);
CREATE INDEX pickup_links_episode ON pickup_links(episode_ref, state) WHERE episode_ref IS NOT NULL;
CREATE INDEX pickup_links_expiry ON pickup_links(state, expires_at);

-- One row per practitioner with a TOTP authenticator or an open enrolment.
CREATE TABLE totp_factors (
    mail          TEXT    PRIMARY KEY,          -- lower case
    generation    INTEGER NOT NULL DEFAULT 0,   -- bumped whenever a secret is set or cleared
    secret_nonce  BLOB,                          -- NULL when not enrolled
    secret        BLOB,                          -- AES-256-GCM(content key, nonce, base32 secret, AAD = prefix, mail, generation)
    enrolled_at   TEXT,
    last_step     INTEGER NOT NULL DEFAULT 0,   -- last accepted time step: a code of it or an earlier one is refused
    pending_nonce BLOB,                          -- the secret shown during enrolment, until its first code confirms it
    pending       BLOB,
    enrol_hash    BLOB,                          -- SHA-256 of the one-time enrolment code; NULL when none is open
    enrol_expires TEXT,
    enrol_by      TEXT    NOT NULL DEFAULT '',
    updated_at    TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- Refused pickup sign-ins per mail address as typed (it may name nobody), for the account lock-out.
CREATE TABLE pickup_lockouts (
    mail       TEXT    PRIMARY KEY,
    failures   INTEGER NOT NULL,
    last_at    TEXT    NOT NULL,
    locked_at  TEXT                              -- set when failures reach the limit; lifted by an administrator
) STRICT, WITHOUT ROWID;
