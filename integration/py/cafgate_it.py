"""Shared helpers for the Python end-to-end tests of cafgate (standard library only).

The Go harness (integration/harness_test.go) starts `cafgate dev --ports auto` and runs
`python3 -m unittest -v MODULE` here with these variables set:
  CAFGATE_DEV_JSON  path of DIR/dev.json (ports, CA, accounts)
  CAFGATE_BIN       the built cafgate binary (for `message list` / `message verify`)
  CAFGATE_CONFIG    DIR/cafgate.toml
  CAFGATE_LOG       the file the gateway's stderr goes to
"""

import base64
import hashlib
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import time
import unittest
from email.utils import formatdate

ACCEPTED_RE = re.compile(r"^2\.0\.0 Accepted as ([0-9A-Z]{16})\b")
REFUSAL_ID_RE = re.compile(r"\(ID ([0-9A-Z]{16})\)\s*$")
ENHANCED_RE = re.compile(r"^([245]\.\d{1,3}\.\d{1,3}) ")


class Env:
    """The running gateway as dev.json describes it."""

    def __init__(self):
        missing = [v for v in ("CAFGATE_DEV_JSON", "CAFGATE_BIN", "CAFGATE_LOG", "CAFGATE_CONFIG")
                   if not os.environ.get(v)]
        if missing:
            raise unittest.SkipTest("run from the Go harness (go test ./integration/): missing " + ", ".join(missing))
        with open(os.environ["CAFGATE_DEV_JSON"]) as f:
            self.info = json.load(f)
        self.bin = os.environ["CAFGATE_BIN"]
        self.config = os.environ["CAFGATE_CONFIG"]
        self.log = os.environ["CAFGATE_LOG"]
        self.ca = self.info["ca_cert"]
        self.hostname = self.info["hostname"]

    def addr(self, role):
        host, port = self.info["listen"][role].rsplit(":", 1)
        return host, int(port)

    def account(self, status="active", exclude=()):
        for a in self.info["accounts"]:
            if a["status"] == status and a["mail"] not in exclude:
                return a
        raise AssertionError("dev.json has no account with status %r besides %r" % (status, list(exclude)))

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def messages(self):
        """`cafgate message list --json` as a list of dicts."""
        p = subprocess.run([self.bin, "message", "list", "--config", self.config, "--json", "--limit", "100000000"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("message list exited %d: %s" % (p.returncode, p.stderr))
        return json.loads(p.stdout)

    def verify(self):
        """`cafgate message verify --json`: (exit code, answer)."""
        p = subprocess.run([self.bin, "message", "verify", "--config", self.config, "--json"],
                           capture_output=True, text=True, timeout=120)
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            raise AssertionError("message verify printed no JSON (exit %d): %r %r" % (p.returncode, p.stdout, p.stderr))

    def log_lines_with(self, needle):
        with open(self.log, errors="replace") as f:
            return [line for line in f if needle in line]


# The Subject tag of the quick start's first sample episode: its consent shares with every sample
# agency and its team holds the first active accounts of dev.json.
DEV_EPISODE = "[CAF-2026-000001]"


def make_message(sender, rcpt, subject=None, lines=None):
    """A small text package for the first sample episode, with CRLF line ends, ending in CRLF,
    unique by its Message-ID."""
    token = secrets.token_hex(8)
    subject = DEV_EPISODE + " " + (subject or ("integration test " + token))
    lines = lines if lines is not None else ["Body of test message " + token + "."]
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@it.cafgate.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            % (sender, rcpt, subject, formatdate(localtime=True), token))
    return (head + "".join(l + "\r\n" for l in lines)).encode()


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def dot_stuff(b):
    out = bytearray()
    start = True
    for ch in b:
        if start and ch == 0x2E:
            out.append(0x2E)
        out.append(ch)
        start = ch == 0x0A
    return bytes(out)


def plain_token(user, password):
    return base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        m = ENHANCED_RE.match(self.lines[0] + " ") if self.lines else None
        return m.group(1) if m else ""

    def __repr__(self):
        return "%d %s" % (self.code, " | ".join(self.lines))


class Raw:
    """A raw SMTP connection: exact bytes out, every reply line in."""

    def __init__(self, env, role, source=None, timeout=30):
        self.env = env
        self.timeout = timeout
        host, port = env.addr(role)
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        if role == "submissions":
            sock = env.tls_context().wrap_socket(sock, server_hostname=env.hostname)
        self.sock = sock
        self.buf = b""
        self.greeting = self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server; unread %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        lines, code = [], 0
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError("malformed reply line %r" % line)
            code = int(line[:3])
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(code, lines)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def pending(self, wait=1.0):
        """Bytes the server sends without being asked within wait seconds (b"" if none, None on close)."""
        if self.buf:
            data, self.buf = self.buf, b""
            return data
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
            return data if data else None
        except (socket.timeout, TimeoutError):
            return b""
        except ssl.SSLError:
            return None
        finally:
            self.sock.settimeout(self.timeout)

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS refused: %r" % r)
        self.sock = self.env.tls_context().wrap_socket(self.sock, server_hostname=self.env.hostname)
        return r

    def signed_in(self, account, starttls=True):
        """EHLO (STARTTLS, EHLO) and AUTH PLAIN as account; asserts each step succeeded."""
        r = self.cmd("EHLO it.cafgate.test")
        assert r.code == 250, r
        if starttls:
            self.starttls()
            r = self.cmd("EHLO it.cafgate.test")
            assert r.code == 250, r
        r = self.cmd("AUTH PLAIN " + plain_token(account["mail"], account["password"]))
        assert r.code == 235, "AUTH PLAIN as %s: %r" % (account["mail"], r)
        return self


class GatewayTestCase(unittest.TestCase):
    """Assertions shared by the test modules."""

    env = None

    @classmethod
    def setUpClass(cls):
        cls.env = Env()

    def assertRefusal(self, code, text, want_code, want_enhanced, words=None):
        """A refusal: its code, enhanced code, "(ID ...)" at the end, and that ID in one log line."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        shown = "%d %s" % (code, text)
        self.assertEqual(code, want_code, "reply %r" % shown)
        self.assertTrue(text.startswith(want_enhanced + " "), "want enhanced code %s in %r" % (want_enhanced, shown))
        for w in words or ():
            self.assertIn(w.lower(), text.lower(), "want the word %r in %r" % (w, shown))
        m = REFUSAL_ID_RE.search(text)
        self.assertIsNotNone(m, "refusal text must end with (ID <16 chars>): %r" % shown)
        rid = m.group(1)
        lines = []
        for _ in range(40):
            lines = self.env.log_lines_with(rid)
            if lines:
                break
            time.sleep(0.05)
        self.assertEqual(len(lines), 1, "ID %s of %r must appear in exactly one stderr log line, found %d: %r"
                         % (rid, shown, len(lines), lines[:3]))
        return rid

    def assertStored(self, msg_id, body, sender, rcpts, via):
        by_id = {m["id"]: m for m in self.env.messages()}
        self.assertIn(msg_id, by_id, "accepted message %s is not in message list" % msg_id)
        m = by_id[msg_id]
        self.assertEqual(m["sha256"], sha256(body), "stored digest differs from the bytes sent for %s" % msg_id)
        self.assertEqual(m["size"], len(body), "size of %s" % msg_id)
        self.assertEqual(m["sender"].lower(), sender.lower())
        self.assertEqual(sorted(r.lower() for r in m["recipients"]), sorted(r.lower() for r in rcpts))
        self.assertEqual(m["via"], via)

    def assertNotStored(self, *bodies):
        digests = {m["sha256"] for m in self.env.messages()}
        for b in bodies:
            self.assertNotIn(sha256(b), digests, "a refused message was stored")
