"""A failure report (DSN) to a sender whose mailbox is hosted here lands in that mailbox, not the relay.

Run by TestDSNToHostedSender (integration/report_test.go), which serves the development setup with
police.cafgate.test no longer hosted and routed to a smart host that refuses every recipient (550).
smtplib submits a package for the first sample episode to the police officer; the relay's 550 makes a
DSN for the sender, which imaplib must find in the sender's hosted INBOX, with the delivery report
saying the delivery failed; `cafgate queue list` must show no DSN or report waiting for the relay.
"""

import email
import email.policy
import json
import subprocess
import time
import unittest

from cafgate_it import DEV_EPISODE, Env, make_message
from report_trip import Mailboxes, submit_accepted


class DSNToHostedSender(unittest.TestCase):
    def test_dsn_in_the_senders_mailbox(self):
        env = Env()
        boxes = Mailboxes(env)
        acc = {a["mail"]: a for a in env.info["accounts"]}
        sender, rcpt = acc["harriet.example@school.cafgate.test"], acc["rita.notreal@police.cafgate.test"]
        data = make_message(sender["mail"], rcpt["mail"], subject="relay failure")
        self.assertTrue(DEV_EPISODE in data.decode())
        package = submit_accepted(env, sender, [rcpt], data)

        raw = boxes.wait_for(sender, lambda r: b"report-type=delivery-status" in r and b"Action: failed" in r
                             and b"receipt." not in r.split(b"\r\n\r\n", 1)[0], timeout=90)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"][0].as_string()
        self.assertIn("Final-Recipient: rfc822; " + rcpt["mail"], status)
        self.assertIn("550 5.1.1", status)
        # The delivery report follows, saying the delivery failed for good.
        rep = boxes.wait_for(sender, lambda r: ("Delivery report for package " + package).encode() in r, timeout=60)
        text = " ".join(email.message_from_bytes(rep, policy=email.policy.default)
                        .get_body(preferencelist=("plain",)).get_content().split())
        self.assertIn(rcpt["mail"] + ": NOT delivered: the gateway has given up", text)
        self.assertIn("550 5.1.1", text)

        # Nothing for the sender went to the relay: the queue holds only the package copy that failed.
        q = subprocess.run([env.bin, "queue", "list", "--config", env.config, "--json"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(q.returncode, 0, q.stderr)
        entries = json.loads(q.stdout)
        self.assertEqual([(e["kind"], e["recipient"], e["state"]) for e in entries],
                         [("message", rcpt["mail"], "failed")], entries)
        # Nothing in the failed recipient's (no longer hosted) mailbox either way; the DSN is there once.
        time.sleep(2)
        n = sum(1 for r in boxes.fetch_all(sender) if b"Action: failed" in r and b"receipt." not in r.split(b"\r\n\r\n", 1)[0])
        self.assertEqual(n, 1)


if __name__ == "__main__":
    unittest.main()
