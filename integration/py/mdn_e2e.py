"""Read receipts (RFC 8098 MDNs) through the built gateway, with real clients.

Gwen sends a package to Rita (both hosted). Rita's client finds the copy over IMAP (imaplib) and sends
a disposition notification about it through SMTP submission (smtplib, the MDN built with Python's email
package). The gateway must answer 250, record "read" in the ledger (`cafgate ledger show`), and pass a
notification on into Gwen's hosted mailbox (imaplib again) holding the receipt's fields and no package
content. Bad receipts get a clear refusal and pass nothing on: one from a practitioner who did not
receive the package, one with a forged Final-Recipient, one carrying the original message, one about
an unknown message, one addressed to someone other than the sender, a malformed one, and one signed
with someone else's certificate. A receipt sent twice is passed on and recorded once; one inside an
S/MIME signature (`openssl cms -sign` with Rita's key) is recorded and passed on.
"""

import email
import email.policy
import imaplib
import json
import os
import re
import smtplib
import subprocess
import tempfile
import time
import unittest
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from cafgate_it import DEV_EPISODE, Env

ACCEPTED = re.compile(rb"Accepted as ([0-9A-Z]{16})")


def build_mdn(reader, sender, original_id, disposition="manual-action/MDN-sent-manually; displayed",
              final=None, third=None, fields=True):
    """An RFC 8098 MDN from reader to sender about original_id, as a mail client builds it."""
    msg = MIMEMultipart("report", report_type="disposition-notification")
    msg["From"] = reader
    msg["To"] = sender
    msg["Subject"] = "Read: CAF package"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="client.it.cafgate.test")
    msg.attach(MIMEText("This is a receipt for the mail you sent. It was displayed.\r\n", "plain"))
    dn = MIMEBase("message", "disposition-notification")
    lines = ["Reporting-UA: rita-laptop; IT mail client 1.0", "Final-Recipient: rfc822;%s" % (final or reader),
             "Original-Message-ID: %s" % original_id]
    if fields:
        lines.append("Disposition: %s" % disposition)
    dn.set_payload("\r\n".join(lines) + "\r\n")
    msg.attach(dn)
    if third is not None:
        msg.attach(third)
    return msg.as_bytes(policy=email.policy.SMTP)


class ReadReceipts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        acc = {a["mail"]: a for a in cls.env.info["accounts"]}
        cls.sender = acc["gwen.testcase@socialcare.cafgate.test"]
        cls.reader = acc["rita.notreal@police.cafgate.test"]
        cls.other = acc["priya.placeholder@health.cafgate.test"]
        cls.marker = "Body-Marker-" + os.urandom(6).hex()
        cls.sender_before = len(cls.inbox(cls.sender, wait_for=0))
        cls.package, cls.copy_id = cls.deliver_package()

    @classmethod
    def deliver_package(cls):
        """Gwen sends a package to Rita; returns its ID and the Message-ID of Rita's copy."""
        code, text = cls.submit(cls.sender, [cls.reader["mail"]],
                                ("From: %s\r\nTo: %s\r\nSubject: %s mdn test\r\nMessage-ID: %s\r\n\r\n%s\r\n" % (
                                    cls.sender["mail"], cls.reader["mail"], DEV_EPISODE,
                                    make_msgid(domain="it.cafgate.test"), cls.marker)).encode())
        assert code == 250, (code, text)
        package = ACCEPTED.search(text).group(1).decode()
        deadline = time.time() + 30
        while time.time() < deadline:
            for raw in cls.inbox(cls.reader, wait_for=0):
                mid = email.message_from_bytes(raw)["Message-ID"].strip()
                if mid.startswith("<%s." % package):
                    return package, mid
            time.sleep(0.3)
        raise AssertionError("the copy of %s never reached Rita's mailbox" % package)

    @classmethod
    def submit(cls, who, rcpts, data):
        """(code, text) of the end-of-data reply."""
        host, port = cls.env.addr("submission")
        with smtplib.SMTP(host, port, timeout=60) as s:
            s.starttls(context=cls.env.tls_context())
            s.login(who["mail"], who["password"])
            code, _ = s.mail(who["mail"])
            assert code == 250
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (r, code, text)
            return s.data(data)

    @classmethod
    def inbox(cls, who, wait_for=1, timeout=30):
        """Every message in who's INBOX, once it holds at least wait_for (or the time is up)."""
        host, port = cls.env.addr("imaps")
        deadline = time.time() + timeout
        while True:
            m = imaplib.IMAP4_SSL(host, port, ssl_context=cls.env.tls_context())
            m.login(who["mail"], who["password"])
            m.select("INBOX", readonly=True)
            _, data = m.search(None, "ALL")
            nums = data[0].split()
            if len(nums) >= wait_for or time.time() > deadline:
                out = [m.fetch(n, "(BODY.PEEK[])")[1][0][1] for n in nums]
                m.logout()
                return out
            m.logout()
            time.sleep(0.3)

    def read_events(self, package=None):
        p = subprocess.run([self.env.bin, "ledger", "show", "--config", self.env.config, "--package", package or self.package,
                            "--type", "read", "--reason", "integration test of read receipts", "--operator", "it",
                            "--json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [e["event"] for e in json.loads(p.stdout)]

    def refused(self, who, rcpts, data, enhanced, words):
        code, text = self.submit(who, rcpts, data)
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith(enhanced.encode()), text)
        self.assertIn(words.encode(), text)

    def test_1_bad_receipts_refused(self):
        r, s = self.reader["mail"], self.sender["mail"]
        self.refused(self.other, [s], build_mdn(self.other["mail"], s, self.copy_id), "5.7.1",
                     "no package the gateway delivered to you")
        self.refused(self.other, [s], build_mdn(self.other["mail"], s, self.copy_id, final=r), "5.7.1",
                     "Final-Recipient must be your own address")
        whole = MIMEBase("message", "rfc822")
        whole.set_payload([email.message_from_bytes(("Subject: x\r\n\r\n%s\r\n" % self.marker).encode())])
        self.refused(self.reader, [s], build_mdn(r, s, self.copy_id, third=whole), "5.7.1", "must not carry the package")
        self.refused(self.reader, [s], build_mdn(r, s, "<unknown.%s@localhost>" % os.urandom(4).hex()), "5.7.1",
                     "no package the gateway delivered to you")
        self.refused(self.reader, [self.other["mail"]], build_mdn(r, self.other["mail"], self.copy_id), "5.7.1",
                     "goes only to the practitioner who sent the package")
        self.refused(self.reader, [s], build_mdn(r, s, self.copy_id, fields=False), "5.6.0", "malformed")
        self.assertEqual(self.read_events(), [], "a refused receipt recorded a read")
        self.assertEqual(len(self.inbox(self.sender, wait_for=0)), self.sender_before, "a refused receipt was passed on")

    def test_2_receipt_recorded_and_passed_on(self):
        r, s = self.reader["mail"], self.sender["mail"]
        headers = MIMEText("", "rfc822-headers")
        headers.set_payload("Message-ID: %s\r\nSubject: CAF package\r\n" % self.copy_id)
        mdn = build_mdn(r, s, self.copy_id, third=headers)
        for attempt in range(2):  # the second time, as after a 250 lost on the way: nothing doubles
            code, text = self.submit(self.reader, [s], mdn)
            self.assertEqual(code, 250, text)
            self.assertTrue(ACCEPTED.search(text), text)
        events = self.read_events()
        self.assertEqual(len(events), 1, events)
        self.assertEqual(events[0]["package"], self.package)
        self.assertEqual(events[0]["data"]["recipient"], r)
        self.assertIn("displayed", events[0]["data"]["disposition"])

        got = self.inbox(self.sender, wait_for=self.sender_before + 1)
        self.assertEqual(len(got), self.sender_before + 1, "exactly one notification passed on to the sender")
        note = email.message_from_bytes(got[-1])
        self.assertEqual(note.get_content_type(), "multipart/report")
        self.assertEqual(note.get_param("report-type"), "disposition-notification")
        self.assertIn(self.package, note["Subject"])
        parts = {p.get_content_type(): p for p in note.walk()}
        self.assertIn("message/disposition-notification", parts)
        fields = got[-1].decode(errors="replace")
        self.assertIn("Original-Message-ID: %s" % self.copy_id, fields)
        self.assertIn("Final-Recipient: rfc822;%s" % r, fields)
        self.assertIn("Disposition: manual-action/MDN-sent-manually; displayed", fields)
        self.assertNotIn(self.marker, fields)
        self.assertNotIn("IT mail client", fields, "the client's own text is not passed on")

    def test_3_signed_receipt(self):
        """A receipt inside an S/MIME signature (RFC 8098 section 3.2.1 allows it), made by `openssl cms`
        with Rita's certificate: the signature is checked, the receipt recorded and passed on."""
        package, copy_id = self.deliver_package()
        r, s = self.reader["mail"], self.sender["mail"]
        whole = email.message_from_bytes(build_mdn(r, s, copy_id))
        entity = ("Content-Type: %s\r\n\r\n" % whole["Content-Type"]).encode() + \
            whole.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[1]
        tmp = tempfile.mkdtemp()
        src, dst = os.path.join(tmp, "mdn.part"), os.path.join(tmp, "signed.eml")
        with open(src, "wb") as f:
            f.write(entity)

        def signed_by(who):
            subprocess.run(["openssl", "cms", "-sign", "-binary", "-in", src, "-out", dst, "-signer", who["cert"],
                            "-inkey", who["key"], "-md", "sha256"], check=True, capture_output=True)
            with open(dst, "rb") as f:
                signed = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            head = ("From: %s\r\nTo: %s\r\nSubject: Read: CAF package\r\nDate: %s\r\nMessage-ID: %s\r\n" % (
                r, s, formatdate(localtime=True), make_msgid(domain="client.it.cafgate.test"))).encode()
            return head + signed

        code, text = self.submit(self.reader, [s], signed_by(self.other))  # someone else's signature
        self.assertEqual(code, 550, text)
        self.assertEqual(self.read_events(package), [])
        code, text = self.submit(self.reader, [s], signed_by(self.reader))
        self.assertEqual(code, 250, text)
        events = self.read_events(package)
        self.assertEqual([e["data"]["recipient"] for e in events], [r])
        notes = [m for m in self.inbox(self.sender, wait_for=self.sender_before + 2) if package.encode() in m]
        self.assertEqual(len(notes), 1, "one notification for the signed receipt")


if __name__ == "__main__":
    unittest.main()
