"""SMTP smuggling (CVE-2023-51764 class) and bare CR / LF / NUL in DATA, over raw TLS sockets.

Each case sends, inside one DATA after STARTTLS and AUTH, an odd end-of-data look-alike followed by a
whole second transaction. The gateway must answer exactly once, 550 5.6.0, send nothing more, store
nothing, and stay in step (a NOOP afterwards gets exactly one 250) or close the connection.
"""

import secrets
import unittest

from cafgate_it import GatewayTestCase, Raw, make_message, sha256

SEQUENCES = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "NUL": b"\x00",
    "bare LF line": b"\n",
    "bare CR line": b"\r",
}


class Smuggling(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sender = cls.env.account("active")
        cls.rcpt = cls.env.account("active", exclude=(cls.sender["mail"],))

    def payload(self, seq):
        s, r = self.sender["mail"], self.rcpt["mail"]
        token = secrets.token_hex(6)
        outer_head = make_message(s, r, subject="outer " + token, lines=["First line.", "Second line"])
        outer_head = outer_head[:-2]  # "Second line" runs straight into the sequence
        smuggled = make_message(s, r, subject="smuggled " + token, lines=["smuggled body " + token])
        tail = ("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (s, r)).encode() + smuggled
        wire = outer_head + seq + tail + b".\r\n"
        # What a vulnerable server could store: the whole thing, the part before the sequence, the
        # smuggled message.
        candidates = [outer_head + seq + tail, outer_head + b"\r\n", outer_head, smuggled]
        return wire, candidates

    def test_sequences(self):
        for name, seq in SEQUENCES.items():
            with self.subTest(sequence=name):
                self.check_sequence(seq)

    def check_sequence(self, seq):
        before = self.env.messages()
        raw = Raw(self.env, "submission").signed_in(self.sender)
        self.addCleanup(raw.close)
        self.assertEqual(raw.cmd("MAIL FROM:<%s>" % self.sender["mail"]).code, 250)
        self.assertEqual(raw.cmd("RCPT TO:<%s>" % self.rcpt["mail"]).code, 250)
        self.assertEqual(raw.cmd("DATA").code, 354)
        wire, candidates = self.payload(seq)
        raw.send(wire)
        first = raw.reply()
        self.assertRefusal(first.code, first.text, 550, "5.6.0")
        extra = raw.pending(1.5)
        self.assertFalse(extra, "replies after the one to the end of data (a second transaction?): %r" % extra)
        if extra is None:
            closed = True
        else:
            closed = False
            try:
                noop = raw.cmd("NOOP")
            except ConnectionError:
                closed = True
            else:
                self.assertEqual(noop.code, 250, "NOOP after the refusal: %r (session out of step)" % noop)
                extra = raw.pending(0.5)
                self.assertFalse(extra, "more replies after NOOP: %r" % extra)
        after = self.env.messages()
        self.assertEqual(len(after), len(before),
                         "messages were stored: %r" % [m for m in after if m["id"] not in {b["id"] for b in before}])
        stored = {m["sha256"] for m in after}
        for c in candidates:
            self.assertNotIn(sha256(c), stored)
        print("  %r: %d %s%s" % (seq, first.code, first.text, " (connection closed after)" if closed else ""))


class StartTLSInjection(GatewayTestCase):
    """CVE-2011-0411: commands pipelined after STARTTLS in the same packet must not be answered inside TLS."""

    INJECTED = {
        "NOOP": b"NOOP\r\n",
        "MAIL": b"MAIL FROM:<attacker@evil.example>\r\n",
        "EHLO+NOOP": b"EHLO evil.example\r\nNOOP\r\n",
    }

    def test_injection(self):
        for name, inj in self.INJECTED.items():
            with self.subTest(injected=name):
                self.check_injection(inj)

    def check_injection(self, inj):
        raw = Raw(self.env, "submission")
        self.addCleanup(raw.close)
        self.assertEqual(raw.cmd("EHLO it.cafgate.test").code, 250)
        raw.send(b"STARTTLS\r\n" + inj)
        r = raw.reply()
        if r.code != 220:
            # Refusing pipelined STARTTLS outright is safe too, provided no TLS session follows.
            print("  STARTTLS with %r pipelined refused: %r" % (inj, r))
            self.assertGreaterEqual(r.code, 400, r)
            return
        self.assertEqual(raw.buf, b"", "plaintext sent after 220 to STARTTLS: %r" % raw.buf)
        try:
            raw.sock = self.env.tls_context().wrap_socket(raw.sock, server_hostname=self.env.hostname)
        except (OSError, ConnectionError) as e:
            print("  TLS handshake after pipelined %r refused (safe): %s" % (inj, e))
            return
        unsolicited = raw.pending(1.0)
        self.assertFalse(unsolicited, "reply inside TLS to a command sent before the handshake: %r" % unsolicited)
        if unsolicited is None:
            print("  connection closed after the handshake (safe)")
            return
        ehlo = raw.cmd("EHLO probe.example")
        self.assertEqual(ehlo.code, 250, ehlo)
        self.assertGreater(len(ehlo.lines), 1, "first reply inside TLS is not the EHLO answer: %r" % ehlo)
        self.assertTrue(any(l.upper().startswith("AUTH") for l in ehlo.lines),
                        "EHLO inside TLS should offer AUTH: %r" % ehlo)
        q = raw.cmd("QUIT")
        self.assertEqual(q.code, 221, "QUIT answered by %r: replies are out of step" % q)


if __name__ == "__main__":
    unittest.main()
