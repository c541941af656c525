-- 0003: episodes (one child's trip through the CAF process), their teams, consent versions
-- (append-only), and the per-recipient decisions and overrides for accepted messages. The child
-- identifier is never stored: only its keyed hash (HMAC-SHA256 under a key kept outside the database).

CREATE TABLE episode_numbers (
    year INTEGER PRIMARY KEY,
    last INTEGER NOT NULL                -- last sequence number given out in that year
) STRICT;

CREATE TABLE episodes (
    ref        TEXT PRIMARY KEY,         -- CAF-YYYY-NNNNNN
    child_hash TEXT NOT NULL,            -- HMAC-SHA256(child key, normalised identifier), hex
    state      TEXT NOT NULL CHECK (state IN ('preparation', 'assessment', 'action-plan-and-delivery', 'review', 'closed')),
    lead       TEXT NOT NULL,            -- lead professional's mail; also a row of episode_members
    opened_at  TEXT NOT NULL,
    opened_by  TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at  TEXT
) STRICT;

-- At most one open episode per child: a second open is refused naming the first.
CREATE UNIQUE INDEX episodes_one_open_per_child ON episodes(child_hash) WHERE state <> 'closed';
CREATE INDEX episodes_state ON episodes(state, ref);

CREATE TABLE episode_members (
    episode_ref TEXT    NOT NULL REFERENCES episodes(ref),
    mail        TEXT    NOT NULL,        -- lower-case
    agency      TEXT    NOT NULL,
    sensitive   INTEGER NOT NULL CHECK (sensitive IN (0, 1)), -- sensitive service: never named to others
    added_at    TEXT    NOT NULL,
    PRIMARY KEY (episode_ref, mail)
) STRICT, WITHOUT ROWID;

CREATE TABLE consent_versions (
    episode_ref TEXT    NOT NULL REFERENCES episodes(ref),
    version     INTEGER NOT NULL CHECK (version > 0),
    given_by    TEXT    NOT NULL CHECK (given_by IN ('child', 'parent', 'carer')),
    given_at    TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,        -- in force from this instant until the next version's
    recorded_by TEXT    NOT NULL,
    withdrawn   INTEGER NOT NULL CHECK (withdrawn IN (0, 1)),
    grants      TEXT    NOT NULL,        -- JSON array of policy.Grant
    refusals    TEXT    NOT NULL,        -- JSON array of policy.Refusal
    PRIMARY KEY (episode_ref, version)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER consent_versions_no_update BEFORE UPDATE ON consent_versions
BEGIN
    SELECT RAISE(ABORT, 'consent_versions is append-only');
END;

CREATE TRIGGER consent_versions_no_delete BEFORE DELETE ON consent_versions
BEGIN
    SELECT RAISE(ABORT, 'consent_versions is append-only');
END;

-- One row per recipient of an accepted message: what policy decided and why.
CREATE TABLE decisions (
    message_id      TEXT    NOT NULL REFERENCES messages(id),
    ord             INTEGER NOT NULL,    -- the recipient's position at submission
    rcpt            TEXT    NOT NULL,
    episode_ref     TEXT,                -- NULL when the package named no known episode
    consent_version INTEGER,             -- the version in force; NULL when none
    result          TEXT    NOT NULL CHECK (result IN ('deliver-all', 'deliver-sections', 'refuse')),
    reason          TEXT    NOT NULL,    -- policy.Reason code
    allowed         TEXT    NOT NULL,    -- JSON array of sections sent
    withheld        TEXT    NOT NULL,    -- JSON array of sections present but not sent
    override        INTEGER NOT NULL CHECK (override IN (0, 1)),
    decided_at      TEXT    NOT NULL,
    PRIMARY KEY (message_id, rcpt)
) STRICT, WITHOUT ROWID;

CREATE INDEX decisions_episode ON decisions(episode_ref, message_id);

-- Child protection overrides: the reason (encrypted under the content key, bound to the message) and
-- whether the lead professional has been told yet.
CREATE TABLE overrides (
    message_id    TEXT PRIMARY KEY REFERENCES messages(id),
    episode_ref   TEXT NOT NULL REFERENCES episodes(ref),
    sender        TEXT NOT NULL,
    lead          TEXT NOT NULL,         -- to be told, with no package content
    reason_nonce  BLOB NOT NULL,
    reason        BLOB NOT NULL,         -- AES-256-GCM(content key, nonce, reason, AAD = override + message ID)
    recorded_at   TEXT NOT NULL,
    lead_told_at  TEXT                   -- set by the delivery side once the notification is queued
) STRICT;

CREATE INDEX overrides_untold ON overrides(lead_told_at, message_id);
