-- 0010: the delivery pipeline takes pending recipients in acceptance order through an index, instead
-- of sorting every pending recipient by their message's seq on each round (slow under a backlog).

ALTER TABLE recipients ADD COLUMN msg_seq INTEGER; -- messages.seq of the recipient's message

UPDATE recipients SET msg_seq = (SELECT seq FROM messages WHERE messages.id = recipients.message_id);

CREATE INDEX recipients_pending ON recipients(state, msg_seq, ord);
