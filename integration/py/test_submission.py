"""SMTP submission with real clients: smtplib over STARTTLS and implicit TLS, and swaks.

Every refusal is checked for its code, enhanced code, the "(ID ...)" at the end of its text and that
ID in exactly one line of the gateway's stderr. Sign-in failures come from their own loopback source
addresses so the failed-sign-in limiter (tested in test_ratelimit.py) does not slow these tests.
"""

import os
import re
import secrets
import shutil
import smtplib
import subprocess
import tempfile
import unittest

from cafgate_it import (ACCEPTED_RE, REFUSAL_ID_RE, GatewayTestCase, make_message, plain_token)

TOO_BIG = 26 * 1024 * 1024  # over the 25 MiB default


def big_body(sender, rcpt, size):
    line = b"A" * 74 + b"\r\n"
    head = make_message(sender, rcpt, lines=[])
    return head + line * (size // len(line) + 1)


def strip_id(text):
    return REFUSAL_ID_RE.sub("", text).strip()


class Submission(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.sender = env.account("active")
        cls.rcpt = env.account("active", exclude=(cls.sender["mail"],))
        cls.lapsed = env.account("lapsed")
        cls.disabled = env.account("disabled")

    # --- helpers -----------------------------------------------------------------------------

    def connect(self, role, source=None):
        host, port = self.env.addr(role)
        src = (source, 0) if source else None
        ctx = self.env.tls_context()
        if role == "submission":
            s = smtplib.SMTP(host, port, timeout=120, source_address=src)
            s.ehlo("it.cafgate.test")
            s.starttls(context=ctx)
            s.ehlo("it.cafgate.test")
        else:
            s = smtplib.SMTP_SSL(host, port, timeout=120, source_address=src, context=ctx)
            s.ehlo("it.cafgate.test")
        self.addCleanup(self.quit, s)
        return s

    @staticmethod
    def quit(s):
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()

    def login(self, s, account, mech="PLAIN"):
        s.user, s.password = account["mail"], account["password"]
        return s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=True)

    def signin_refusal(self, role, account, password, source):
        s = self.connect(role, source=source)
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            self.login(s, {"mail": account["mail"], "password": password})
        return cm.exception.smtp_code, cm.exception.smtp_error.decode()

    def transact(self, s, rcpts, body, mail_from=None, mail_opts=()):
        code, resp = s.mail(mail_from or self.sender["mail"], list(mail_opts))
        if code != 250:
            return "mail", code, resp.decode()
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code != 250:
                return "rcpt", code, resp.decode()
        try:
            code, resp = s.data(body)
        except smtplib.SMTPDataError as e:
            return "data-cmd", e.smtp_code, e.smtp_error.decode()
        return "data", code, resp.decode()

    def assertAccepted(self, role, mech):
        s = self.connect(role)
        code, resp = self.login(s, self.sender, mech)
        self.assertEqual(code, 235, resp)
        body = make_message(self.sender["mail"], self.rcpt["mail"], lines=[
            "Line one.", ".A line starting with a dot, stuffed on the wire.", "", "Last line."])
        stage, code, text = self.transact(s, [self.rcpt["mail"]], body)
        self.assertEqual((stage, code), ("data", 250), text)
        m = ACCEPTED_RE.match(text)
        self.assertIsNotNone(m, "250 text must be '2.0.0 Accepted as <ID> ...': %r" % text)
        self.assertStored(m.group(1), body, self.sender["mail"], [self.rcpt["mail"]], role)

    # --- success -----------------------------------------------------------------------------

    def test_starttls_auth_plain_accepted(self):
        self.assertAccepted("submission", "PLAIN")

    def test_starttls_auth_login_accepted(self):
        self.assertAccepted("submission", "LOGIN")

    def test_implicit_tls_auth_plain_accepted(self):
        self.assertAccepted("submissions", "PLAIN")

    def test_implicit_tls_auth_login_accepted(self):
        self.assertAccepted("submissions", "LOGIN")

    # --- sign-in -----------------------------------------------------------------------------

    def test_auth_before_starttls_refused(self):
        host, port = self.env.addr("submission")
        s = smtplib.SMTP(host, port, timeout=60, source_address=("127.0.0.31", 0))
        self.addCleanup(self.quit, s)
        s.ehlo("it.cafgate.test")
        code, resp = s.docmd("AUTH", "PLAIN " + plain_token(self.sender["mail"], self.sender["password"]))
        self.assertRefusal(code, resp, 530, "5.7.0")
        code, resp = s.docmd("MAIL", "FROM:<%s>" % self.sender["mail"])
        self.assertRefusal(code, resp, 530, "5.7.0")

    def test_wrong_password_refused(self):
        for role, src in (("submission", "127.0.0.32"), ("submissions", "127.0.0.33")):
            with self.subTest(role=role):
                code, text = self.signin_refusal(role, self.sender, "wrong-" + secrets.token_hex(4), src)
                self.assertRefusal(code, text, 535, "5.7.8")

    def test_lapsed_and_disabled_cannot_sign_in_same_face(self):
        code, wrong = self.signin_refusal("submissions", self.sender, "wrong-" + secrets.token_hex(4), "127.0.0.34")
        self.assertRefusal(code, wrong, 535, "5.7.8")
        for acc, src in ((self.lapsed, "127.0.0.35"), (self.disabled, "127.0.0.36")):
            with self.subTest(status=acc["status"]):
                code, text = self.signin_refusal("submissions", acc, acc["password"], src)
                self.assertRefusal(code, text, 535, "5.7.8")
                self.assertEqual(strip_id(text), strip_id(wrong),
                                 "a %s account's refusal must look like a wrong password" % acc["status"])
        code, text = self.signin_refusal("submissions", {"mail": "nobody@school.cafgate.test"}, "x-" + secrets.token_hex(4), "127.0.0.37")
        self.assertRefusal(code, text, 535, "5.7.8")
        self.assertEqual(strip_id(text), strip_id(wrong), "an unknown user's refusal must look like a wrong password")

    # --- envelope ----------------------------------------------------------------------------

    def test_sender_not_signed_in_user_refused(self):
        s = self.connect("submission")
        self.login(s, self.sender)
        code, resp = s.mail(self.rcpt["mail"])
        self.assertRefusal(code, resp.decode(), 550, "5.7.1")

    def test_unknown_recipients_refused(self):
        s = self.connect("submissions")
        self.login(s, self.sender)
        code, resp = s.mail(self.sender["mail"])
        self.assertEqual(code, 250, resp)
        for rcpt in ("nobody@school.cafgate.test", "someone@no-directory-answers.example"):
            with self.subTest(rcpt=rcpt):
                code, resp = s.rcpt(rcpt)
                self.assertRefusal(code, resp.decode(), 550, "5.1.1")

    def test_lapsed_recipient_refused(self):
        s = self.connect("submission")
        self.login(s, self.sender)
        s.mail(self.sender["mail"])
        code, resp = s.rcpt(self.lapsed["mail"])
        self.assertRefusal(code, resp.decode(), 550, "5.7.1", words=["vetting"])

    def test_disabled_recipient_refused(self):
        s = self.connect("submission")
        self.login(s, self.sender)
        s.mail(self.sender["mail"])
        code, resp = s.rcpt(self.disabled["mail"])
        self.assertRefusal(code, resp.decode(), 550, "5.7.1", words=["disabled"])

    def test_refused_recipients_do_not_spoil_the_transaction(self):
        s = self.connect("submissions")
        self.login(s, self.sender)
        body = make_message(self.sender["mail"], self.rcpt["mail"])
        self.assertEqual(s.mail(self.sender["mail"])[0], 250)
        self.assertEqual(s.rcpt(self.disabled["mail"])[0], 550)
        self.assertEqual(s.rcpt(self.rcpt["mail"])[0], 250)
        code, resp = s.data(body)
        m = ACCEPTED_RE.match(resp.decode())
        self.assertTrue(code == 250 and m, "%d %s" % (code, resp))
        self.assertStored(m.group(1), body, self.sender["mail"], [self.rcpt["mail"]], "submissions")

    # --- size --------------------------------------------------------------------------------

    def test_too_big_declared_size_refused(self):
        s = self.connect("submission")
        self.login(s, self.sender)
        body = big_body(self.sender["mail"], self.rcpt["mail"], TOO_BIG)
        stage, code, text = self.transact(s, [self.rcpt["mail"]], body, mail_opts=["SIZE=%d" % len(body)])
        self.assertRefusal(code, text, 552, "5.3.4")
        self.assertNotStored(body)

    def test_too_big_undeclared_refused_after_data(self):
        s = self.connect("submissions")
        self.login(s, self.sender)
        body = big_body(self.sender["mail"], self.rcpt["mail"], TOO_BIG)
        stage, code, text = self.transact(s, [self.rcpt["mail"]], body)
        self.assertEqual(stage, "data", "%s %d %s" % (stage, code, text))
        self.assertRefusal(code, text, 552, "5.3.4")
        self.assertNotStored(body)


@unittest.skipUnless(shutil.which("swaks"), "swaks is not installed (integration/ci.sh installs it)")
class Swaks(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sender = cls.env.account("active")
        cls.rcpt = cls.env.account("active", exclude=(cls.sender["mail"],))

    def swaks(self, role, password, data_path, source=None):
        host, port = self.env.addr(role)
        args = ["swaks", "--server", host, "--port", str(port), "--ehlo", "it.cafgate.test",
                "--tls-verify", "--tls-ca-path", self.env.ca,
                "--auth", "PLAIN", "--auth-user", self.sender["mail"], "--auth-password", password,
                "--from", self.sender["mail"], "--to", self.rcpt["mail"], "--data", data_path,
                "--timeout", "60"]
        args.append("--tls" if role == "submission" else "--tlsc")
        if source:
            args += ["--local-interface", source]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr

    def message_file(self):
        body = make_message(self.sender["mail"], self.rcpt["mail"], subject="swaks " + secrets.token_hex(6))
        f = tempfile.NamedTemporaryFile(delete=False, suffix=".eml")
        # swaks ends the data with CRLF "." CRLF after the file, so the file holds the message
        # without its final CRLF.
        f.write(body[:-2])
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name, body

    def test_swaks_success(self):
        for role in ("submission", "submissions"):
            with self.subTest(role=role):
                path, body = self.message_file()
                rc, out = self.swaks(role, self.sender["password"], path)
                self.assertEqual(rc, 0, out)
                m = re.search(r"<~?\s+250 2\.0\.0 Accepted as ([0-9A-Z]{16})\b", out)
                self.assertIsNotNone(m, "no '250 2.0.0 Accepted as <ID>' in swaks output:\n" + out)
                self.assertStored(m.group(1), body, self.sender["mail"], [self.rcpt["mail"]], role)

    def test_swaks_wrong_password(self):
        path, body = self.message_file()
        rc, out = self.swaks("submission", "wrong-" + secrets.token_hex(4), path, source="127.0.0.38")
        self.assertNotEqual(rc, 0, out)
        m = re.search(r"<~?\*?\s+(535) (5\.7\.8 .*)$", out, re.M)
        self.assertIsNotNone(m, "no 535 5.7.8 in swaks output:\n" + out)
        self.assertRefusal(535, m.group(2), 535, "5.7.8")
        self.assertNotStored(body)


if __name__ == "__main__":
    unittest.main()
