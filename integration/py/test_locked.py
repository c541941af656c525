"""The store of record locked by another process: 451 4.3.0, nothing stored, and recovery after.

Holds BEGIN EXCLUSIVE on DIR/data/cafgate.db from Python's sqlite3 for at least HOLD seconds (longer than
the gateway's busy timeout of a few seconds) while submitting over each port in turn, then releases it.
"""

import os
import smtplib
import sqlite3
import threading
import time
import unittest

from cafgate_it import ACCEPTED_RE, GatewayTestCase, make_message

HOLD = 15.0      # at least this long
MAX_HOLD = 60.0  # at most this long, whatever happens
SLOW = 20.0      # a refusal slower than this fails (4x the 5 s default busy timeout, for loaded CI machines)


class DatabaseLocked(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sender = cls.env.account("active")
        cls.rcpt = cls.env.account("active", exclude=(cls.sender["mail"],))
        cls.db = os.path.join(cls.env.info["dir"], "data", "cafgate.db")

    def submit(self, role, body):
        host, port = self.env.addr(role)
        ctx = self.env.tls_context()
        if role == "submission":
            s = smtplib.SMTP(host, port, timeout=60)
            s.starttls(context=ctx)
        else:
            s = smtplib.SMTP_SSL(host, port, timeout=60, context=ctx)
        try:
            s.login(self.sender["mail"], self.sender["password"])
            self.assertEqual(s.mail(self.sender["mail"])[0], 250)
            self.assertEqual(s.rcpt(self.rcpt["mail"])[0], 250)
            try:
                code, resp = s.data(body)
            except smtplib.SMTPDataError as e:
                code, resp = e.smtp_code, e.smtp_error
            return code, resp.decode()
        finally:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                s.close()

    def test_locked_then_released(self):
        self.assertTrue(os.path.exists(self.db), "no database at %s" % self.db)
        lock = sqlite3.connect(self.db, timeout=10, isolation_level=None, check_same_thread=False)
        lock.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        released = threading.Event()

        def release():
            lock.execute("ROLLBACK")
            lock.close()
            released.set()

        # The lock is held until both submissions have been answered, and at least HOLD seconds.
        timer = threading.Timer(MAX_HOLD, release)
        timer.start()
        self.addCleanup(timer.cancel)

        refused = []
        for role in ("submission", "submissions"):
            body = make_message(self.sender["mail"], self.rcpt["mail"])
            t0 = time.monotonic()
            code, text = self.submit(role, body)
            secs = time.monotonic() - t0
            print("  %s while locked: %d %s (%.1f s from connecting to the answer)" % (role, code, text, secs))
            self.assertFalse(released.is_set(), "%s: no answer within %.0f s of locking" % (role, MAX_HOLD))
            self.assertRefusal(code, text, 451, "4.3.0")
            self.assertLess(secs, SLOW, "%s: the refusal took %.1f s; the busy timeout is a few seconds"
                            % (role, secs))
            refused.append(body)
        timer.cancel()
        time.sleep(max(0, HOLD - (time.monotonic() - locked_at)))
        release()

        released.wait(HOLD + 5)
        self.assertTrue(released.is_set())
        self.assertNotStored(*refused)

        body = make_message(self.sender["mail"], self.rcpt["mail"])
        code, text = self.submit("submissions", body)
        m = ACCEPTED_RE.match(text)
        self.assertTrue(code == 250 and m, "after release: %d %s" % (code, text))
        self.assertStored(m.group(1), body, self.sender["mail"], [self.rcpt["mail"]], "submissions")
        rc, v = self.env.verify()
        self.assertEqual(rc, 0, v)
        self.assertEqual(v["failed"], [], v)


if __name__ == "__main__":
    unittest.main()
