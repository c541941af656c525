"""Failed sign-ins from one address: answered slower after 3, refused with 421 4.7.0 after 10.

Runs against a gateway of its own (the limiter's memory is per process). Each attempt is a new
connection over implicit TLS from the loopback address 127.0.0.51, so other tests are not affected;
another address (127.0.0.52) must still be able to sign in. Failures 4-10 are timed against the fastest
of the first three, after a warm-up sign-in from a third address.
"""

import secrets
import time
import unittest

from cafgate_it import GatewayTestCase, Raw, plain_token

SOURCE = "127.0.0.51"
OTHER = "127.0.0.52"
WARMUP = "127.0.0.53"


class FailedSignIns(GatewayTestCase):

    def attempt(self, account, password, source):
        """One connection: greeting, EHLO, AUTH. Returns (stage, reply, seconds)."""
        t0 = time.monotonic()
        raw = Raw(self.env, "submissions", source=source, timeout=120)
        try:
            if raw.greeting.code != 220:
                return "greeting", raw.greeting, time.monotonic() - t0
            r = raw.cmd("EHLO it.cafgate.test")
            if r.code != 250:
                return "ehlo", r, time.monotonic() - t0
            r = raw.cmd("AUTH PLAIN " + plain_token(account["mail"], password))
            return "auth", r, time.monotonic() - t0
        finally:
            raw.close()

    def test_delay_then_block(self):
        acc = self.env.account("active")
        stage, r, _ = self.attempt(acc, acc["password"], WARMUP)  # first TLS handshake and look-ups
        self.assertEqual((stage, r.code), ("auth", 235), "warm-up sign-in: %s %r" % (stage, r))
        times = []
        for i in range(10):
            stage, r, secs = self.attempt(acc, "wrong-" + secrets.token_hex(4), SOURCE)
            print("  failed sign-in %2d: %s %r in %.2f s" % (i + 1, stage, r, secs))
            self.assertEqual(stage, "auth", "attempt %d ended at %s: %r" % (i + 1, stage, r))
            self.assertRefusal(r.code, r.text, 535, "5.7.8")
            times.append(secs)
        shown = ["%.2f" % t for t in times]
        fastest = min(times[:3])
        self.assertGreater(min(times[3:]), fastest + 0.1, "failed sign-ins 4-10 are not each delayed: times %s" % shown)
        self.assertGreater(sum(times[3:]) - 7 * fastest, 3.0, "failed sign-ins 4-10 are hardly delayed: times %s" % shown)

        # The 11th, even with the right password, is refused with 421 4.7.0 at some step.
        stage, r, secs = self.attempt(acc, acc["password"], SOURCE)
        print("  11th attempt (right password): %s %r in %.2f s" % (stage, r, secs))
        self.assertNotEqual(r.code, 235, "signed in after 10 failures within the window")
        self.assertRefusal(r.code, r.text, 421, "4.7.0")

        # The limit is per address: another address signs in at once.
        stage, r, secs = self.attempt(acc, acc["password"], OTHER)
        self.assertEqual((stage, r.code), ("auth", 235), "another address: %s %r" % (stage, r))
        self.assertLess(secs, 5, "another address was slowed down: %.2f s" % secs)


if __name__ == "__main__":
    unittest.main()
