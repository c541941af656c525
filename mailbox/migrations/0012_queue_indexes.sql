-- 0012: the outbound queue's indexes serve the look-ups made of it.
--
-- A read receipt (MDN) finds the package it is about by the copy's Message-ID (packageSentTo); with no
-- index on header_message_id that was a scan of the whole queue, which keeps every entry ever sent,
-- inside the writer's transaction. queue_message (message_id) goes: the UNIQUE (message_id, recipient,
-- kind, about) index starts with message_id and serves the same look-ups, so every queue row kept
-- one index entry more than it needed. The copies' Message-IDs start with the message ID, which is in
-- time order, so the new index grows at its end like the one it replaces.

DROP INDEX queue_message;
CREATE INDEX queue_header_id ON queue(header_message_id);
