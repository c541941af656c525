-- 0010: sessions of the pickup page, in the store of record so they survive a restart and are the same
-- on every node serving the page (mailbox/session.go). The cookie is "S" + ID + secret; only the
-- secret's SHA-256 is stored and it is compared in constant time. A session ends when idle past
-- idle_until, at expires_at whatever happens, at sign-out, and with its link (revoked or expired).

CREATE TABLE pickup_sessions (
    id            TEXT    PRIMARY KEY,          -- "S" + 16 base32 characters (80 bits); not secret
    secret_hash   BLOB    NOT NULL,             -- SHA-256 of the cookie's secret part
    kind          TEXT    NOT NULL CHECK (kind IN ('package', 'enrol', 'links')),
    mail          TEXT    NOT NULL,             -- the signed-in practitioner, lower case
    link_id       TEXT    REFERENCES pickup_links(id), -- package sessions: the link signed in through
    reason        TEXT    NOT NULL DEFAULT '',  -- the reason for access given, if asked
    return_nonce  BLOB,                          -- enrol sessions started from a link: the link's token,
    return_sealed BLOB,                          --   AES-256-GCM under a key derived from the cookie's secret
    idle_seconds  INTEGER NOT NULL CHECK (idle_seconds > 0),
    created_at    TEXT    NOT NULL,
    seen_at       TEXT    NOT NULL,
    idle_until    TEXT    NOT NULL,             -- fixed-width UTC: seen_at + idle, at most expires_at
    expires_at    TEXT    NOT NULL              -- created_at + the maximum session age
) STRICT, WITHOUT ROWID;

CREATE INDEX pickup_sessions_link ON pickup_sessions(link_id) WHERE link_id IS NOT NULL;
CREATE INDEX pickup_sessions_mail ON pickup_sessions(mail, created_at);
CREATE INDEX pickup_sessions_idle ON pickup_sessions(idle_until);
