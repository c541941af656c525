"""The whole trip of a package through the built gateway, read by real clients.

smtplib submits a package for the first sample episode to a recipient with a certificate and one
without. The first reads it over IMAP (imaplib) and `openssl cms` decrypts and verifies it; the
second finds a notification with no package content in their mailbox, and collects the package on
the pickup page (urllib over HTTPS: password plus a TOTP code computed here, RFC 6238).
"""

import base64
import hashlib
import hmac
import http.cookiejar
import imaplib
import os
import re
import smtplib
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from cafgate_it import DEV_EPISODE, Env


def totp(secret, at=None):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((at or time.time()) // 30)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)


class Delivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        acc = {a["mail"]: a for a in cls.env.info["accounts"]}
        cls.sender = acc["gwen.testcase@socialcare.cafgate.test"]       # on the episode's team
        cls.with_cert = acc["rita.notreal@police.cafgate.test"]         # has an S/MIME certificate
        cls.without_cert = acc["harriet.example@school.cafgate.test"]   # has none
        assert cls.with_cert["cert"] and not cls.without_cert["cert"]
        cls.marker = "Body-Marker-" + os.urandom(6).hex()
        cls.subject = DEV_EPISODE + " Subject-Marker-" + os.urandom(6).hex()
        host, port = cls.env.addr("submission")
        with smtplib.SMTP(host, port, timeout=60) as s:
            s.starttls(context=cls.env.tls_context())
            s.login(cls.sender["mail"], cls.sender["password"])
            s.sendmail(cls.sender["mail"], [cls.with_cert["mail"], cls.without_cert["mail"]],
                       ("From: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (cls.sender["mail"], cls.subject, cls.marker)).encode())

    def inbox(self, who, timeout=30):
        host, port = self.env.addr("imaps")
        deadline = time.time() + timeout
        while True:
            m = imaplib.IMAP4_SSL(host, port, ssl_context=self.env.tls_context())
            m.login(who["mail"], who["password"])
            m.select("INBOX")
            _, data = m.search(None, "ALL")
            if data[0] or time.time() > deadline:
                out = [m.fetch(n, "(BODY[])")[1][0][1] for n in data[0].split()]
                m.logout()
                return out
            m.logout()
            time.sleep(0.5)

    def test_smime_copy_over_imap(self):
        msgs = self.inbox(self.with_cert)
        self.assertEqual(len(msgs), 1, "exactly one copy in the recipient's mailbox")
        raw = msgs[0]
        self.assertIn(b"application/pkcs7-mime", raw)
        self.assertNotIn(self.marker.encode(), raw)
        self.assertNotIn(self.subject.encode(), raw, "the original Subject must not travel outside the encryption")
        tmp = tempfile.mkdtemp()
        enc, dec = os.path.join(tmp, "enc.eml"), os.path.join(tmp, "dec.eml")
        with open(enc, "wb") as f:
            f.write(raw)
        subprocess.run(["openssl", "cms", "-decrypt", "-in", enc, "-out", dec, "-recip", self.with_cert["cert"],
                        "-inkey", self.with_cert["key"]], check=True, capture_output=True)
        v = subprocess.run(["openssl", "cms", "-verify", "-in", dec, "-CAfile", self.env.ca],
                           capture_output=True)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn(self.marker.encode(), v.stdout)
        self.assertIn(b"application/vnd.cafgate.manifest+json", v.stdout)

    def test_notification_and_pickup(self):
        msgs = self.inbox(self.without_cert)
        self.assertEqual(len(msgs), 1)
        note = msgs[0].decode()
        self.assertNotIn(self.marker, note)
        self.assertNotIn("Subject-Marker", note)
        link = re.search(r"https://\S+/pickup/\S+", note).group(0)
        jar = http.cookiejar.CookieJar()
        ctx = self.env.tls_context()
        ctx.check_hostname = False  # the link names localhost; the address is 127.0.0.1
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             urllib.request.HTTPCookieProcessor(jar))
        url = link.replace("localhost", "127.0.0.1")
        for _ in range(2):  # opening the link (a scanner's prefetch) never uses it up
            page = opener.open(url, timeout=30).read().decode()
            self.assertIn("Sign in", page)
            self.assertNotIn(self.marker, page)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)

        def sign_in(code, password=None):
            form = urllib.parse.urlencode({"csrf": csrf, "mail": self.without_cert["mail"],
                                           "password": password or self.without_cert["password"], "code": code}).encode()
            req = urllib.request.Request(url, data=form, headers={"Sec-Fetch-Site": "same-origin",
                                                                 "Origin": "https://127.0.0.1"})
            try:
                return opener.open(req, timeout=30).read().decode()
            except urllib.error.HTTPError as e:
                return e.read().decode()

        refused = sign_in(totp(self.without_cert["totp_secret"]), password="wrong-password")
        self.assertNotIn(self.marker, refused)
        page = sign_in(totp(self.without_cert["totp_secret"]))
        self.assertNotIn("Sign in to collect", page, page[:2000])
        self.assertIn("Eastshire Children", page, "the page names the sending agency")
        # Downloads are POST forms carrying the session's CSRF token (never GET links).
        forms = re.findall(r'<form method="post" action="([^"]+)"><input type="hidden" name="csrf" value="([^"]+)">'
                           r'<input type="hidden" name="doc" value="(\d+)">', page)
        self.assertTrue(forms, "no document to download on the package page")
        action, token, n = forms[0]
        base = urllib.parse.urlsplit(url)
        req = urllib.request.Request("%s://%s%s" % (base.scheme, base.netloc, action),
                                     data=urllib.parse.urlencode({"csrf": token, "doc": n}).encode(),
                                     headers={"Sec-Fetch-Site": "same-origin", "Origin": "https://127.0.0.1"})
        body = opener.open(req, timeout=30).read()
        self.assertIn(self.marker.encode(), body)

if __name__ == "__main__":
    unittest.main()
