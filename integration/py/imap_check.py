"""End-to-end checks of the hosted IMAP mailboxes with Python's imaplib (a real, independent peer).

Two ways to run it, both standard library only (plus the openssl command for the dev mode):

In-process (integration/imap_test.go starts gateway/imapd on loopback and delivers through the store):
  CAFGATE_IMAP_HOST, CAFGATE_IMAP_SERVER_NAME   where to connect, and the TLS name to verify
  CAFGATE_IMAPS_PORT, CAFGATE_IMAP_PORT         implicit TLS, and plain with STARTTLS
  CAFGATE_IMAP_CA                               CA certificate (PEM) the server's certificate chains to
  CAFGATE_IMAP_USER, CAFGATE_IMAP_PASSWORD      a hosted practitioner in good standing
  CAFGATE_IMAP_REFUSED                          "mail:password" pairs (comma separated) that must not sign in
  CAFGATE_IMAP_EXPECT_FILE                      the exact bytes of the message already in the INBOX
  CAFGATE_IMAP_TRIGGER                          a file to create to ask for one more delivery (for IDLE)

Against `cafgate dev` (the Go harness sets CAFGATE_DEV_JSON and friends, see cafgate_it.py): the IMAP
addresses come from dev.json's "listen" ("imaps", "imap"); the suite is skipped while they are absent.
A package is sent over SMTP submission from a sample episode's lead to a team member with a
certificate; it must appear in that member's INBOX, and `openssl cms -decrypt` with the member's key
from dev.json must yield the package text. A second package sent during IDLE must be announced.

Run: python3 imap_check.py   (or python3 -m unittest -v imap_check from this directory)
"""

import imaplib
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

COPYUID_RE = re.compile(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]")
APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
SPECIAL = {b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive"}


class Target:
    """Where the IMAP server is and whom to sign in as, from the in-process variables or dev.json."""

    def __init__(self):
        self.dev = None
        if os.environ.get("CAFGATE_IMAP_HOST"):
            self._from_env()
        elif os.environ.get("CAFGATE_DEV_JSON"):
            self._from_dev(os.environ["CAFGATE_DEV_JSON"])
        else:
            raise unittest.SkipTest("set CAFGATE_IMAP_* (integration/imap_test.go) or CAFGATE_DEV_JSON (cafgate dev)")

    def _from_env(self):
        e = os.environ
        self.host = e["CAFGATE_IMAP_HOST"]
        self.server_name = e.get("CAFGATE_IMAP_SERVER_NAME", "localhost")
        self.imaps_port = int(e["CAFGATE_IMAPS_PORT"])
        self.imap_port = int(e["CAFGATE_IMAP_PORT"])
        self.ca = e["CAFGATE_IMAP_CA"]
        self.user, self.password = e["CAFGATE_IMAP_USER"], e["CAFGATE_IMAP_PASSWORD"]
        self.refused = [tuple(p.split(":", 1)) for p in e.get("CAFGATE_IMAP_REFUSED", "").split(",") if p]
        with open(e["CAFGATE_IMAP_EXPECT_FILE"], "rb") as f:
            self.expect = f.read()
        self.trigger = e.get("CAFGATE_IMAP_TRIGGER")

    def _from_dev(self, path):
        with open(path) as f:
            info = json.load(f)
        listen = info.get("listen", {})
        if not listen.get("imaps") or not listen.get("imap"):
            raise unittest.SkipTest("dev.json lists no imap/imaps listener yet: the IMAP server is not wired into cafgate dev")
        self.dev = info
        self.host, self.imaps_port = split_addr(listen["imaps"])
        _, self.imap_port = split_addr(listen["imap"])
        self.server_name = info["hostname"]
        self.ca = info["ca_cert"]
        ep = next(e for e in info["episodes"] if e.get("team"))
        accounts = {a["mail"]: a for a in info["accounts"]}
        self.sender = accounts[ep["lead"]]
        self.reference = ep["reference"]
        rcpt = next(m for m in ep["team"] if m != ep["lead"] and accounts.get(m, {}).get("cert")
                    and accounts[m]["status"] == "active")
        self.account = accounts[rcpt]
        self.user, self.password = rcpt, self.account["password"]
        self.refused = [(a["mail"], a["password"]) for a in info["accounts"] if a["status"] != "active"]
        self.expect = None
        self.trigger = None
        self.submission = split_addr(listen["submission"])

    def context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def imaps(self):
        return imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=self.context(), timeout=30)

    def plain(self):
        return imaplib.IMAP4(self.host, self.imap_port, timeout=30)

    def signed_in(self):
        m = self.imaps()
        m.login(self.user, self.password)
        return m

    def deliver_one(self, note):
        """Cause one more message in the user's INBOX: the in-process harness watches the trigger file;
        against cafgate dev a package is submitted over SMTP."""
        if self.dev is None:
            with open(self.trigger, "w") as f:
                f.write(note)
            return note
        return self.send_package(note)

    def send_package(self, note):
        token = "imap-check-%s-%d" % (note, time.time_ns())
        body = ("From: <%s>\r\nTo: <%s>\r\nSubject: [%s] hosted mailbox check %s\r\nMessage-ID: <%s@it.cafgate.test>\r\n"
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPackage text %s.\r\n"
                % (self.sender["mail"], self.user, self.reference, token, token, token))
        host, port = self.submission
        with smtplib.SMTP(host, port, timeout=30) as s:
            s.starttls(context=self.context())
            s.login(self.sender["mail"], self.sender["password"])
            s.sendmail(self.sender["mail"], [self.user], body.encode())
        return token


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def code_of(err):
    if isinstance(err, bytes):
        err = err.decode(errors="replace")
    m = re.search(r"\[([A-Z-]+)", str(err))
    return m.group(1) if m else ""


def wait_for_messages(m, at_least, limit):
    """NOOP until the selected folder holds at_least messages; returns the count."""
    deadline = time.time() + limit
    while True:
        typ, data = m.select("INBOX")
        n = int(data[0])
        if n >= at_least or time.time() > deadline:
            return n
        time.sleep(0.5)


class HostedMailboxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Target()
        if cls.t.dev is not None:
            # One package first, so that the INBOX has something to work on.
            m = cls.t.signed_in()
            before = int(m.select("INBOX")[1][0])
            cls.token = cls.t.send_package("first")
            n = wait_for_messages(m, before + 1, 60)
            if n < before + 1:
                raise AssertionError("the package did not reach the hosted INBOX within 60 s")
            cls.t.expect = None
            m.logout()

    def test_plain_port_refuses_sign_in_before_starttls(self):
        m = self.t.plain()
        caps = m.capabilities
        self.assertIn("LOGINDISABLED", caps)
        self.assertIn("STARTTLS", caps)
        self.assertFalse(any(c.startswith("AUTH=") for c in caps), caps)
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login(self.t.user, self.t.password)
        self.assertIn("PRIVACYREQUIRED", str(cm.exception))
        m.shutdown()

    def test_starttls_then_sign_in(self):
        m = self.t.plain()
        m.starttls(ssl_context=self.t.context())
        typ, caps = m.capability()
        self.assertIn(b"AUTH=PLAIN", caps[0])
        self.assertNotIn(b"LOGINDISABLED", caps[0])
        typ, _ = m.login(self.t.user, self.t.password)
        self.assertEqual(typ, "OK")
        m.logout()

    def test_certificate_is_verified(self):
        # A context that trusts nothing must fail the handshake: the server's certificate is real.
        ctx = ssl.create_default_context()
        with self.assertRaises(ssl.SSLError):
            imaplib.IMAP4_SSL(self.t.host, self.t.imaps_port, ssl_context=ctx, timeout=10)

    def test_wrong_password_and_refused_accounts(self):
        for user, password in [(self.t.user, "wrong-" + self.t.password)] + list(self.t.refused):
            m = self.t.imaps()
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                m.login(user, password)
            self.assertEqual(code_of(cm.exception), "AUTHENTICATIONFAILED", user)
            self.assertRegex(str(cm.exception), r"\(ID [0-9A-Z]{16}\)")
            m.shutdown()

    def test_special_use_folders(self):
        m = self.t.signed_in()
        typ, lines = m.list()
        self.assertEqual(typ, "OK")
        names, attrs = set(), set()
        for line in lines:
            mm = re.match(rb'\(([^)]*)\) "/" "?([^"]*)"?', line)
            self.assertIsNotNone(mm, line)
            names.add(mm.group(2))
            attrs.update(a for a in mm.group(1).split() if a in SPECIAL)
        self.assertTrue({b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"} <= names, names)
        self.assertEqual(attrs, SPECIAL)
        typ, st = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
        for item in (rb"MESSAGES \d+", rb"UNSEEN \d+", rb"UIDNEXT \d+", rb"UIDVALIDITY [1-9]\d*"):
            self.assertRegex(st[0], item)
        m.logout()

    def test_fetch_the_delivered_message(self):
        m = self.t.signed_in()
        typ, data = m.select("INBOX")
        self.assertGreaterEqual(int(data[0]), 1)
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        body = data[0][1]
        if self.t.expect is not None:
            self.assertEqual(body, self.t.expect)
            self.assertIn(b"RFC822.SIZE %d" % len(self.t.expect), data[0][0])
        else:
            self.check_decrypts(body, self.token)
        self.assertNotIn(b"\\Seen", data[0][0], "PEEK must not set \\Seen")
        typ, data = m.fetch("1", "(BODY[HEADER.FIELDS (MESSAGE-ID)])")
        self.assertIn(b"\\Seen", b" ".join(x if isinstance(x, bytes) else x[0] for x in data))
        m.logout()

    def check_decrypts(self, body, token):
        """openssl cms -decrypt with the recipient's key must give the package text."""
        self.assertRegex(body, rb"(?i)content-type:\s*application/(x-)?pkcs7-mime")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "msg.eml")
            with open(path, "wb") as f:
                f.write(body)
            out = subprocess.run(["openssl", "cms", "-decrypt", "-in", path, "-inkey", self.t.account["key"],
                                  "-recip", self.t.account["cert"]], capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
            plain = out.stdout
            if token.encode() not in plain:  # signed inside: opaque signature to unwrap
                dec = os.path.join(d, "inner.eml")
                with open(dec, "wb") as f:
                    f.write(plain)
                v = subprocess.run(["openssl", "cms", "-verify", "-noverify", "-in", dec], capture_output=True, timeout=60)
                plain = v.stdout
            self.assertIn(token.encode(), plain)

    def test_flags_search_copy_move_expunge(self):
        m = self.t.signed_in()
        m.select("INBOX")
        typ, data = m.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        self.assertTrue(uids)
        uid = uids[0]
        typ, data = m.uid("STORE", uid, "+FLAGS", "(\\Flagged $Checked)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"\\Flagged", data[0])
        typ, data = m.uid("SEARCH", None, "FLAGGED KEYWORD $Checked")
        self.assertIn(uid, data[0].split())
        # imaplib's uid() drops the tagged answer's text, where COPYUID is: ask for it directly.
        typ, data = m._simple_command("UID", "COPY", uid, "Archive")
        self.assertEqual(typ, "OK")
        cu = COPYUID_RE.search(data[0])
        self.assertIsNotNone(cu, data)
        self.assertEqual(cu.group(2), uid)
        typ, st = m.status("Archive", "(UIDVALIDITY)")
        self.assertIn(b"UIDVALIDITY " + cu.group(1), st[0])
        m.select("Archive")
        typ, data = m.uid("MOVE", cu.group(3), "Trash")
        self.assertEqual(typ, "OK")
        self.assertIn("COPYUID", m.untagged_responses)
        self.assertIn("EXPUNGE", m.untagged_responses)
        m.select("Trash")
        typ, data = m.uid("SEARCH", None, "ALL")
        self.assertEqual(len(data[0].split()), 1)
        m.store("1", "+FLAGS", "\\Deleted")
        typ, data = m.expunge()
        self.assertEqual(data, [b"1"])
        m.select("INBOX")
        typ, data = m.uid("STORE", uid, "-FLAGS", "(\\Flagged $Checked)")
        self.assertEqual(typ, "OK")
        m.logout()

    def test_append_to_sent_not_inbox(self):
        m = self.t.signed_in()
        msg = b"From: <%s>\r\nSubject: my own copy\r\nMessage-ID: <own-%d@client>\r\n\r\nCopy.\r\n" % (
            self.t.user.encode(), time.time_ns())
        typ, data = m.append("Sent", "(\\Seen)", None, msg)
        self.assertEqual(typ, "OK")
        self.assertIsNotNone(APPENDUID_RE.search(data[0]), data)
        typ, data = m.append("INBOX", None, None, msg)
        self.assertEqual((typ, code_of(data[0])), ("NO", "CANNOT"))
        typ, data = m.append('"No such folder"', None, None, msg)
        self.assertEqual((typ, code_of(data[0])), ("NO", "TRYCREATE"))
        m.logout()

    def test_idle_announces_a_delivery(self):
        m = self.t.signed_in()
        typ, data = m.select("INBOX")
        before = int(data[0])
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        m.sock.settimeout(30)
        self.assertTrue(m.readline().startswith(b"+"), "no continuation for IDLE")
        start = time.time()
        self.t.deliver_one("idle")
        limit = 5 if self.t.dev is None else 60
        exists = None
        while time.time() - start < limit:
            m.sock.settimeout(max(0.1, limit - (time.time() - start)))
            try:
                line = m.readline()
            except (socket.timeout, TimeoutError):
                break
            mm = re.match(rb"\* (\d+) EXISTS", line)
            if mm:
                exists = int(mm.group(1))
                break
        took = time.time() - start
        m.sock.settimeout(30)
        m.send(b"DONE\r\n")
        while True:
            line = m.readline()
            if line.startswith(tag):
                self.assertIn(b"OK", line)
                break
        self.assertIsNotNone(exists, "no EXISTS within %d s of the delivery" % limit)
        self.assertEqual(exists, before + 1)
        if self.t.dev is None:
            self.assertLess(took, 2.5, "EXISTS took %.1f s" % took)
        m.logout()


if __name__ == "__main__":
    unittest.main(verbosity=2)
