-- 0013: the public certificates that queued recipes encrypt to, stored once each.
--
-- A recipe (0011) named each certificate it encrypts to by its whole DER: about a kilobyte and a half a
-- key, written with every copy, read, decoded and parsed at every attempt, and deleted with the
-- copy, though a recipient's copies all name the same one or two certificates. A recipe now names
-- them by SHA-256 and the certificates are kept here (public data, as in the directory; not
-- encrypted). Rows are never changed and are kept: they are few (one per certificate ever used).

CREATE TABLE certificates (
    sha256 BLOB PRIMARY KEY CHECK (length(sha256) = 32),  -- SHA-256 of der
    der    BLOB NOT NULL
) STRICT, WITHOUT ROWID;
