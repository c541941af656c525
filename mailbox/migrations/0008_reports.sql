-- 0008: the sender's delivery report (receipt) for each package. A row is made in the same transaction
-- as the pipeline's first step for one of the package's recipients (mailbox/delivery.go), and marked
-- sent in the same transaction that stores or queues the report with its "receipt" ledger event
-- (mailbox/report.go), so a crash neither loses a report nor sends one twice. When some recipients were
-- refused or had sections withheld and the full report is not ready a few minutes after acceptance, a
-- first report is sent then (first_sent_at), and the full one still follows.

CREATE TABLE package_reports (
    message_id TEXT PRIMARY KEY REFERENCES messages(id),
    created_at TEXT NOT NULL,
    sent_at    TEXT,                  -- NULL until the report is stored or queued
    first_sent_at TEXT,               -- the early report about refusals, when the full one was slow
    outcomes   INTEGER NOT NULL DEFAULT 0,  -- recipients with a final outcome in the report sent
    pending    INTEGER NOT NULL DEFAULT 0   -- recipients still without one (a report sent at the deadline)
) STRICT;

CREATE INDEX package_reports_unsent ON package_reports(created_at) WHERE sent_at IS NULL;

-- Packages accepted before this migration are not reported on (their senders were never promised one).
INSERT INTO package_reports (message_id, created_at, sent_at)
    SELECT id, received_at, received_at FROM messages;
