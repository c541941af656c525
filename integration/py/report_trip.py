"""What the gateway tells people about a package, read by real clients from their hosted mailboxes.

smtplib submits a manifest package for the second sample episode (CAF-2026-000002: the family refuses
Eastshire Police, refuses one named practitioner, and withholds family and environment from Eastshire
Children's Services) to three recipients. It checks the SMTP answers, that the sender's delivery
report arrives in the sender's hosted mailbox (imaplib) naming the refused and withheld recipients and
why, that its ledger proofs pass `cafgate ledger check-proof`, and that each recipient's copy holds only
the allowed sections (`openssl cms -decrypt` with the key from dev.json). A package sent under a child
protection override makes the episode's lead professional receive a notice without package content.
"""

import email
import email.policy
import imaplib
import json
import os
import re
import secrets
import smtplib
import subprocess
import tempfile
import time
import unittest

from cafgate_it import Env

EPISODE = "CAF-2026-000002"


def manifest_package(sender, rcpts, details_marker, family_marker, child, override_reason=None):
    """A manifest package with two documents: one holding child's details, one family and environment."""
    boundary = "b" + secrets.token_hex(8)
    manifest = {"version": 1, "episode": EPISODE, "child": child, "sender": sender,
                "documents": [{"part": "details.txt", "sections": ["childs-details"]},
                              {"part": "family.txt", "sections": ["family-and-environment"]}]}
    if override_reason:
        manifest["override_reason"] = override_reason
    parts = [("application/vnd.cafgate.manifest+json", "manifest.json", json.dumps(manifest)),
             ("text/plain; charset=utf-8", "details.txt", "Child's details: " + details_marker),
             ("text/plain; charset=utf-8", "family.txt", "Family and environment: " + family_marker)]
    out = ("From: <%s>\r\nTo: %s\r\nSubject: [%s] assessment\r\nMessage-ID: <%s@it.cafgate.test>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
           % (sender, ", ".join("<%s>" % r for r in rcpts), EPISODE, secrets.token_hex(8), boundary))
    for ctype, name, body in parts:
        out += ("--%s\r\nContent-Type: %s\r\nContent-Disposition: attachment; filename=%s\r\n\r\n%s\r\n"
                % (boundary, ctype, name, body))
    return (out + "--%s--\r\n" % boundary).encode()


class Mailboxes:
    def __init__(self, env):
        self.env = env

    def fetch_all(self, who):
        host, port = self.env.addr("imaps")
        m = imaplib.IMAP4_SSL(host, port, ssl_context=self.env.tls_context())
        try:
            m.login(who["mail"], who["password"])
            m.select("INBOX")
            _, data = m.search(None, "ALL")
            return [m.fetch(n, "(BODY.PEEK[])")[1][0][1] for n in data[0].split()]
        finally:
            m.logout()

    def wait_for(self, who, match, timeout=60):
        """The first message in who's INBOX for which match(raw) is true, waiting up to timeout."""
        deadline = time.time() + timeout
        while True:
            for raw in self.fetch_all(who):
                if match(raw):
                    return raw
            if time.time() > deadline:
                raise AssertionError("no matching message in %s's INBOX after %ds" % (who["mail"], timeout))
            time.sleep(0.5)


def submit_accepted(env, sender, rcpts, data):
    """Submits data, requires 250 and returns the package ID from the answer."""
    host, port = env.addr("submission")
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.starttls(context=env.tls_context())
        s.login(sender["mail"], sender["password"])
        s.mail(sender["mail"])
        for r in rcpts:
            code, _ = s.rcpt(r["mail"])
            assert code == 250, (r["mail"], code)
        code, text = s.data(data)
        text = text.decode()
        assert code == 250, (code, text)
        m = re.search(r"Accepted as ([0-9A-Z]{16})", text)
        assert m, text
        return m.group(1)


def text_part(msg):
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            return part.get_content()
    return ""


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.boxes = Mailboxes(cls.env)
        acc = {a["mail"]: a for a in cls.env.info["accounts"]}
        cls.sender = acc["harriet.example@school.cafgate.test"]  # on the team, a safeguarding person
        cls.police = acc["rita.notreal@police.cafgate.test"]      # her agency is refused
        cls.named = acc["sam.fictitious@health.cafgate.test"]     # refused by name
        cls.partial = acc["gwen.testcase@socialcare.cafgate.test"]  # family and environment withheld
        cls.details = "DETAILS-" + secrets.token_hex(6)
        cls.family = "FAMILY-" + secrets.token_hex(6)
        cls.child = "IT-CHILD-" + secrets.token_hex(4)
        cls.data = manifest_package(cls.sender["mail"], [cls.police["mail"], cls.named["mail"], cls.partial["mail"]],
                                    cls.details, cls.family, cls.child)
        cls.package = submit_accepted(cls.env, cls.sender, [cls.police, cls.named, cls.partial], cls.data)

    def test_all_refused_is_550_with_reasons(self):
        data = manifest_package(self.sender["mail"], [self.police["mail"], self.named["mail"]],
                                "X-" + secrets.token_hex(4), "Y-" + secrets.token_hex(4), self.child)
        host, port = self.env.addr("submission")
        with smtplib.SMTP(host, port, timeout=60) as s:
            s.starttls(context=self.env.tls_context())
            s.login(self.sender["mail"], self.sender["password"])
            s.mail(self.sender["mail"])
            s.rcpt(self.police["mail"])
            s.rcpt(self.named["mail"])
            code, text = s.data(data)
        text = text.decode()
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith("5.7.1"), text)
        self.assertIn("Eastshire Police", text)
        self.assertIn(self.named["mail"], text)

    def test_report_in_the_senders_mailbox(self):
        raw = self.boxes.wait_for(self.sender, lambda r: ("Delivery report for package " + self.package).encode() in r)
        for secret in (self.details, self.family, self.child):
            self.assertNotIn(secret.encode(), raw, "package content or the child's identifier in the report")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg["Auto-Submitted"], "auto-generated")
        text = " ".join(text_part(msg).split())
        for want in (self.police["mail"] + ": NOT sent: the family has refused consent to share with this recipient's agency",
                     self.named["mail"] + ": NOT sent: the family has refused consent to share with this person",
                     self.partial["mail"] + ": delivered",
                     "Sections withheld from " + self.partial["mail"] + ": family and environment."):
            self.assertIn(want, text)
        status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
        self.assertEqual(len(status), 1)
        fields = status[0].as_string()
        self.assertIn("X-Cafgate-Decision: refused-agency", fields)
        self.assertIn("X-Cafgate-Decision: refused-person", fields)
        self.assertIn("X-Cafgate-Decision: sections-withheld", fields)
        # The proofs check against the ledger's public key (from the gateway's data directory).
        pub = os.path.join(self.env.info["dir"], "data", "ledger.key.pub")
        proofs = [p for p in msg.walk() if (p.get_filename() or "").startswith("ledger-proof-")]
        self.assertGreaterEqual(len(proofs), 3, "accepted, decisions and gwen's delivery at least")
        tmp = tempfile.mkdtemp()
        kinds = []
        for p in proofs:
            path = os.path.join(tmp, p.get_filename())
            with open(path, "wb") as f:
                f.write(p.get_payload(decode=True))
            r = subprocess.run([self.env.bin, "ledger", "check-proof", "--pub", pub, path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("OK: event", r.stdout)
            with open(path) as f:
                event = json.loads(re.search(r"^event (.*)$", f.read(), re.M).group(1))
            self.assertEqual(event["package"], self.package)
            kinds.append(event["type"])
        self.assertIn("accepted", kinds)
        self.assertIn("decisions", kinds)
        # A changed proof fails.
        with open(path) as f:
            bad = f.read().replace('"package":"' + self.package, '"package":"' + "X" * 16)
        with open(path + ".bad", "w") as f:
            f.write(bad)
        r = subprocess.run([self.env.bin, "ledger", "check-proof", "--pub", pub, path + ".bad"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        # Exactly one report for the package.
        time.sleep(3)
        n = sum(1 for r in self.boxes.fetch_all(self.sender) if ("Delivery report for package " + self.package).encode() in r)
        self.assertEqual(n, 1)

    def test_each_copy_holds_only_the_allowed_sections(self):
        raw = self.boxes.wait_for(self.partial, lambda r: b"application/pkcs7-mime" in r)
        tmp = tempfile.mkdtemp()
        enc, dec = os.path.join(tmp, "enc.eml"), os.path.join(tmp, "dec.eml")
        with open(enc, "wb") as f:
            f.write(raw)
        subprocess.run(["openssl", "cms", "-decrypt", "-in", enc, "-out", dec, "-recip", self.partial["cert"],
                        "-inkey", self.partial["key"]], check=True, capture_output=True)
        v = subprocess.run(["openssl", "cms", "-verify", "-in", dec, "-CAfile", self.env.ca], capture_output=True)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn(self.details.encode(), v.stdout)
        self.assertNotIn(self.family.encode(), v.stdout, "a withheld section reached the recipient")
        # The refused recipients have nothing from this package (their mailboxes are hosted here too;
        # another test may send the police officer a package under an override, so each copy is opened).
        time.sleep(2)
        for who in (self.police, self.named):
            for i, r in enumerate(self.boxes.fetch_all(who)):
                self.assertNotIn(self.package.encode(), r)
                if b"application/pkcs7-mime" not in r:
                    continue
                path = os.path.join(tmp, "%s-%d.eml" % (who["mail"], i))
                with open(path, "wb") as f:
                    f.write(r)
                d = subprocess.run(["openssl", "cms", "-decrypt", "-in", path, "-recip", who["cert"], "-inkey", who["key"]],
                                   check=True, capture_output=True)
                self.assertNotIn(self.details.encode(), d.stdout, who["mail"] + " received a copy")


class OverrideNotice(unittest.TestCase):
    def test_lead_is_told_without_content(self):
        env = Env()
        boxes = Mailboxes(env)
        acc = {a["mail"]: a for a in env.info["accounts"]}
        sender, police = acc["harriet.example@school.cafgate.test"], acc["rita.notreal@police.cafgate.test"]
        lead = acc[[e for e in env.info["episodes"] if e["reference"] == EPISODE][0]["lead"]]
        reason = "REASON-" + secrets.token_hex(6) + " disclosure of harm today"
        details, family = "DETAILS-" + secrets.token_hex(6), "FAMILY-" + secrets.token_hex(6)
        child = "IT-CHILD-" + secrets.token_hex(4)
        package = submit_accepted(env, sender, [police],
                                  manifest_package(sender["mail"], [police["mail"]], details, family, child, reason))
        raw = boxes.wait_for(lead, lambda r: b"override" in r and package.encode() in r)
        for secret in (reason, details, family, child):
            self.assertNotIn(secret.encode(), raw, "the notice must hold no package content nor the stated reason")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg["Subject"], "Child protection override used in episode " + EPISODE)
        body = msg.get_content()
        self.assertIn("Who overrode:   " + sender["mail"], body)
        self.assertIn("Reason code:    override", body)
        self.assertIn("Package:        " + package, body)
        self.assertIn("    " + police["mail"], body)
        # The police officer received the package under the override.
        boxes.wait_for(police, lambda r: b"application/pkcs7-mime" in r)


if __name__ == "__main__":
    unittest.main()
