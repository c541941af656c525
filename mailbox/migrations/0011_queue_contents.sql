-- 0011: queue content moves to a table of its own. SQLite rewrites a whole row when any column of it
-- changes, so with the sealed copy in the queue row every claim (queued -> sending) wrote the copy to
-- the log again: up to megabytes an entry, for a state change of a few bytes. Now the state changes
-- touch only the small queue row; the content is written once, read once and deleted once the entry
-- is delivered or failed. It is encrypted at rest as before (AAD = queue ID).

CREATE TABLE queue_contents (
    id      TEXT PRIMARY KEY REFERENCES queue(id),  -- the queue entry
    nonce   BLOB NOT NULL,                          -- AES-GCM nonce
    content BLOB NOT NULL                           -- AES-256-GCM(content key, nonce, plaintext, AAD = queue ID)
) STRICT;

INSERT INTO queue_contents (id, nonce, content)
    SELECT id, content_nonce, content FROM queue WHERE content IS NOT NULL;

ALTER TABLE queue DROP COLUMN content;
ALTER TABLE queue DROP COLUMN content_nonce;
