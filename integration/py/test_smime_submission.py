"""S/MIME submissions end to end: what `openssl cms` signs and encrypts, submitted with smtplib.

A signature by the signed-in practitioner (detached or opaque) is accepted; one by another
practitioner, or over altered content, is refused with 550 5.7.1 and nothing is stored; a message
encrypted to the gateway's certificate is decrypted and accepted, also when signed inside.
"""

import os
import smtplib
import subprocess
import tempfile
import unittest

from cafgate_it import ACCEPTED_RE, DEV_EPISODE, Env, REFUSAL_ID_RE


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class SMIMESubmission(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        acc = {a["mail"]: a for a in cls.env.info["accounts"]}
        # Both on the first sample episode's team, both with certificates from the development CA.
        cls.sender = acc["gwen.testcase@socialcare.cafgate.test"]
        cls.other = acc["rita.notreal@police.cafgate.test"]
        cls.gateway_cert = os.path.join(cls.env.info["dir"], "smime", "gateway@cafgate.test.pem")
        cls.tmp = tempfile.mkdtemp()
        cls.inner = os.path.join(cls.tmp, "inner.txt")
        with open(cls.inner, "wb") as f:
            f.write(b"Content-Type: text/plain; charset=utf-8\r\n\r\nSigned review notes.\r\n")

    def openssl(self, *args, infile=None):
        return crlf(subprocess.run(["openssl", "cms", "-in", infile or self.inner, *args],
                                   capture_output=True, check=True).stdout)

    def signed(self, who, detached=True):
        args = ["-sign", "-signer", who["cert"], "-inkey", who["key"], "-md", "sha256", "-binary"]
        if not detached:
            args.append("-nodetach")
        return self.openssl(*args)

    def send(self, body):
        host, port = self.env.addr("submission")
        with smtplib.SMTP(host, port, timeout=60) as s:
            s.starttls(context=self.env.tls_context())
            s.login(self.sender["mail"], self.sender["password"])
            s.mail(self.sender["mail"])
            code, _ = s.rcpt(self.other["mail"])
            self.assertEqual(code, 250)
            head = ("From: %s\r\nTo: %s\r\nSubject: %s S/MIME\r\n" % (self.sender["mail"], self.other["mail"], DEV_EPISODE)).encode()
            code, text = s.data(head + body)
            return code, text.decode()

    def assertAccepted(self, reply):
        code, text = reply
        self.assertEqual(code, 250, text)
        self.assertRegex(text, ACCEPTED_RE)

    def assertRefused(self, reply, words):
        code, text = reply
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith("5.7.1 "), text)
        self.assertIn(words, text)
        self.assertRegex(text, REFUSAL_ID_RE)

    def test_signed_detached_and_opaque(self):
        self.assertAccepted(self.send(self.signed(self.sender)))
        self.assertAccepted(self.send(self.signed(self.sender, detached=False)))

    def test_signature_by_another_practitioner(self):
        self.assertRefused(self.send(self.signed(self.other)), "signature was refused")

    def test_altered_content(self):
        body = self.signed(self.sender)
        i = body.index(b"Signed review notes")
        self.assertRefused(self.send(body[:i] + b"X" + body[i + 1:]), "does not match its content")

    def test_encrypted_to_gateway(self):
        for cipher in ("-aes-256-gcm", "-aes-256-cbc"):
            self.assertAccepted(self.send(self.openssl("-encrypt", cipher, self.gateway_cert)))

    def test_signed_then_encrypted(self):
        signed = os.path.join(self.tmp, "signed.eml")
        with open(signed, "wb") as f:
            f.write(self.signed(self.sender, detached=False))
        self.assertAccepted(self.send(self.openssl("-encrypt", "-aes-256-gcm", self.gateway_cert, infile=signed)))

    def test_encrypted_to_someone_else(self):
        self.assertRefused(self.send(self.openssl("-encrypt", "-aes-256-gcm", self.other["cert"])), "not to this gateway")


if __name__ == "__main__":
    unittest.main()
