-- 0007: the HTTPS API's clients (agency case systems) and its idempotency keys. A client holds one
-- credential: an API key (only the SHA-256 of its random secret is kept) or a client certificate
-- (its SHA-256 fingerprint). An idempotency key is reserved before a package is accepted and bound to
-- the message ID after, so a retried upload is answered with the first result (docs/api.md).

CREATE TABLE api_clients (
    id               TEXT PRIMARY KEY,      -- opaque, public: quoted in logs and by `cafgate client list`
    agency           TEXT NOT NULL,         -- the one agency it acts for, as the directory names it
    name             TEXT NOT NULL,         -- what the agency calls the system
    key_hash         TEXT,                  -- SHA-256 of the API key's secret, lower-case hex
    cert_fingerprint TEXT UNIQUE,           -- SHA-256 of the client certificate (DER), lower-case hex
    created_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    revoked_at       TEXT,                  -- set once; a revoked client is never accepted again
    revoked_by       TEXT,
    CHECK ((key_hash IS NULL) <> (cert_fingerprint IS NULL))
) STRICT;

CREATE TABLE api_idempotency (
    client_id    TEXT    NOT NULL REFERENCES api_clients(id),
    key          TEXT    NOT NULL,          -- the client's Idempotency-Key
    request_hash TEXT    NOT NULL,          -- SHA-256 of what the request asked for (never its content)
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    holder       TEXT    NOT NULL,          -- the gateway process (random per start) holding a pending key
    sender       TEXT    NOT NULL,          -- the practitioner the upload was made for
    digest       TEXT    NOT NULL,          -- SHA-256 of the message being accepted, lower-case hex
    seq_floor    INTEGER NOT NULL,          -- MAX(messages.seq) when reserved: the message comes after it
    message_id   TEXT,                      -- the accepted message, once done
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (client_id, key)
) STRICT;

CREATE INDEX api_idempotency_created ON api_idempotency(created_at);
CREATE UNIQUE INDEX api_idempotency_message ON api_idempotency(message_id) WHERE message_id IS NOT NULL;
