-- 0011: queue content moves to a table of its own, and a package copy may be queued as a recipe.
--
-- SQLite rewrites a whole row when any column of it changes, so with the sealed copy in the queue row
-- every claim (queued -> sending) wrote the copy to the log again: up to megabytes an entry, for a
-- state change of a few bytes. Now the state changes touch only the small queue row.
--
-- A row here is either the entry's whole message ('copy': reports, notices, DSNs) or, for a package
-- copy to a remote recipient, the recipe the relay builds and seals the copy from when it sends it
-- ('recipe': the allowed sections, the certificates and cipher chosen, the copy's Date): the
-- package itself is already stored (messages.content), so the copy is never written to disk. Both
-- are encrypted at rest under the content key, bound to the queue ID and to their form, and deleted
-- once the entry is delivered or failed.

CREATE TABLE queue_contents (
    id      TEXT PRIMARY KEY REFERENCES queue(id),  -- the queue entry
    form    TEXT NOT NULL CHECK (form IN ('copy', 'recipe')),
    nonce   BLOB NOT NULL,                          -- AES-GCM nonce
    content BLOB NOT NULL                           -- AES-256-GCM(content key, nonce, plaintext, AAD = queue ID and form)
) STRICT;

INSERT INTO queue_contents (id, form, nonce, content)
    SELECT id, 'copy', content_nonce, content FROM queue WHERE content IS NOT NULL;

ALTER TABLE queue DROP COLUMN content;
ALTER TABLE queue DROP COLUMN content_nonce;
