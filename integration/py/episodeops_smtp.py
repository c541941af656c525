"""Episode operations from a package's manifest, submitted with smtplib to the built gateway.

A package opens an episode (the gateway gives the reference), a second open for the same child is
refused naming the first, a handover by a member who is not the lead is refused, the lead hands over,
the new lead closes it with a last package, and a package under the closed episode is refused. Bad
manifests (an unknown episode, an unknown section, an override without a reason, an open that names
a reference, a transition the CAF process does not allow) are refused with the SMTP code, the enhanced
code and a sentence naming the field. Every refusal stores nothing: checked after each in the store
of record itself (a read-only look at its tables: messages, episodes, teams, consent, decisions,
ledger events) and with `cafgate message list` and `cafgate episode list` at the end.
"""

import json
import os
import secrets
import smtplib
import sqlite3
import subprocess

from cafgate_it import GatewayTestCase

GWEN = "gwen.testcase@socialcare.cafgate.test"       # social care; on both sample teams
HARRIET = "harriet.example@school.cafgate.test"      # school; safeguarding person
PRIYA = "priya.placeholder@health.cafgate.test"      # health; lead of the sample episodes
RITA = "rita.notreal@police.cafgate.test"            # police


def manifest_package(sender, rcpts, manifest, sections=("childs-details",)):
    """A manifest package with one document."""
    token = secrets.token_hex(8)
    if "documents" not in manifest:
        manifest = dict(manifest, documents=[{"part": "caf-form.pdf", "sections": list(sections)}])
    manifest = dict({"version": 1, "sender": sender}, **manifest)
    return ("From: <%s>\r\nTo: %s\r\nSubject: CAF package %s\r\nMessage-ID: <%s@it.cafgate.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=PKG\r\n\r\n"
            "--PKG\r\nContent-Type: application/vnd.cafgate.manifest+json\r\n\r\n%s\r\n"
            "--PKG\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=caf-form.pdf\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--PKG--\r\n"
            % (sender, ", ".join("<%s>" % r for r in rcpts), token, token, json.dumps(manifest))).encode()


def plain_package(sender, rcpts, ref):
    token = secrets.token_hex(8)
    return ("From: <%s>\r\nTo: %s\r\nSubject: [%s] notes %s\r\nMessage-ID: <%s@it.cafgate.test>\r\n\r\nnotes\r\n"
            % (sender, ", ".join("<%s>" % r for r in rcpts), ref, token, token)).encode()


CONSENT_TEAM = {"given_by": "parent", "given_at": "2026-03-01T10:30:00Z", "grants": [{"team": True}]}


class EpisodeOperations(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.acc = {a["mail"]: a for a in cls.env.info["accounts"]}

    # --- helpers

    def cli(self, *args):
        p = subprocess.run([self.env.bin] + list(args) + ["--config", self.env.config, "--json"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "cafgate %s: %s" % (" ".join(args), p.stderr))
        return json.loads(p.stdout)

    def episodes(self):
        return {e["reference"]: e for e in self.cli("episode", "list", "--limit", "1000")}

    def send(self, sender, rcpts, body):
        """Submits body; returns (code, text) of the answer to DATA."""
        host, port = self.env.addr("submission")
        with smtplib.SMTP(host, port, timeout=60) as s:
            s.starttls(context=self.env.tls_context())
            s.login(sender, self.acc[sender]["password"])
            code, resp = s.mail(sender)
            self.assertEqual(code, 250, resp)
            for r in rcpts:
                code, resp = s.rcpt(r)
                if code != 250:
                    self.fail("recipient refused: %s %d %s" % (r, code, resp))
            code, resp = s.data(body)  # a str gets CRLF line ends, as sendmail gives it
            return code, resp.decode("utf-8", "replace")

    def accepted(self, sender, rcpts, body):
        code, text = self.send(sender, rcpts, body)
        self.assertEqual(code, 250, "want the package accepted: %d %s" % (code, text))
        return text

    def store(self):
        """What the store of record holds that a package could change: row counts and every episode's
        state and lead (read-only, beside the running gateway)."""
        path = os.path.join(os.path.dirname(self.env.config), "data", "cafgate.db")
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
        try:
            out = {t: db.execute("SELECT count(*) FROM " + t).fetchone()[0]
                   for t in ("messages", "recipients", "episodes", "episode_members", "consent_versions",
                             "decisions", "overrides")}
            # Every event but the sign-ins (each submission signs in, and that is recorded).
            out["ledger_events"] = db.execute(
                "SELECT count(*) FROM ledger_events WHERE json_extract(event, '$.type') <> 'signin'").fetchone()[0]
            out["episode_rows"] = db.execute("SELECT ref, state, lead FROM episodes ORDER BY ref").fetchall()
            return out
        finally:
            db.close()

    def refused(self, sender, rcpts, body, code, enhanced, words):
        """The package is refused as said, and nothing is stored: no message, no episode change, no
        consent, no decision, no ledger event."""
        before = self.store()
        got, text = self.send(sender, rcpts, body)
        self.assertRefusal(got, text, code, enhanced, words)
        self.assertEqual(self.store(), before, "a refused package changed the store")
        return text

    def lead_and_state(self, ref):
        e = self.cli("episode", "show", ref)
        return e["lead"], e["state"]

    # --- tests

    def test_open_handover_close(self):
        child = "IT-%s" % secrets.token_hex(4).upper()
        before = self.episodes()
        opening = {"child": child, "consent": CONSENT_TEAM,
                   "operations": [{"op": "open", "lead": GWEN, "members": [HARRIET]},
                                  {"op": "transition", "state": "assessment"}]}
        answer = self.accepted(GWEN, [HARRIET], manifest_package(GWEN, [HARRIET], opening))
        new = [r for r in self.episodes() if r not in before]
        self.assertEqual(len(new), 1, "one episode opened by the package")
        ref = new[0]
        # The answer to DATA names the new episode, so the sender can quote it in what follows.
        self.assertIn("it opened episode " + ref, answer)
        shown = self.cli("episode", "show", ref)
        self.assertEqual((shown["lead"], shown["state"]), (GWEN, "assessment"))
        self.assertIn(HARRIET, [m["mail"] for m in shown["team"]])
        self.assertEqual(shown["consent"]["version"], 1)
        # Each change is a ledger event saying who made it and by which package.
        path = os.path.join(os.path.dirname(self.env.config), "data", "cafgate.db")
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
        try:
            rows = db.execute("SELECT json_extract(event, '$.type'), coalesce(json_extract(event, '$.data.by'), '') FROM ledger_events "
                              "WHERE json_extract(event, '$.data.episode') = ? ORDER BY seq", (ref,)).fetchall()
        finally:
            db.close()
        self.assertEqual([r[0] for r in rows], ["episode-opened", "episode-transition", "consent-recorded", "decisions"])
        for typ, by in rows[:3]:
            self.assertTrue(by.startswith(GWEN + " (package "), "%s event by %r" % (typ, by))

        # The same child, written another way: refused naming the open episode (the sender is on
        # its team), nothing stored.
        again = dict(opening, child=child.lower().replace("-", ""))
        self.refused(GWEN, [HARRIET], manifest_package(GWEN, [HARRIET], again), 550, "5.7.1",
                     ["/operations/0", "already has an open episode", ref])

        # A handover asked by a member who is not the lead: refused, the lead unchanged.
        handover = {"episode": ref, "child": child, "operations": [{"op": "handover", "lead": HARRIET}]}
        self.refused(HARRIET, [GWEN], manifest_package(HARRIET, [GWEN], dict(handover, sender=HARRIET)), 550, "5.7.1",
                     ["/operations/0", "only the lead professional"])
        self.assertEqual(self.lead_and_state(ref), (GWEN, "assessment"))

        # The lead hands over.
        self.accepted(GWEN, [HARRIET], manifest_package(GWEN, [HARRIET], handover))
        self.assertEqual(self.lead_and_state(ref), (HARRIET, "assessment"))

        # The former lead may no longer close it; the new lead closes it with a last package.
        closing = {"episode": ref, "child": child, "operations": [{"op": "close"}]}
        self.refused(GWEN, [HARRIET], manifest_package(GWEN, [HARRIET], closing), 550, "5.7.1",
                     ["/operations/0", "only the lead professional"])
        self.accepted(HARRIET, [GWEN], manifest_package(HARRIET, [GWEN], dict(closing, sender=HARRIET)))
        self.assertEqual(self.lead_and_state(ref)[1], "closed")

        # Under the closed episode nothing more is shared: a plain mail and a manifest package.
        self.refused(HARRIET, [GWEN], plain_package(HARRIET, [GWEN], ref), 550, "5.7.1",
                     ["header Subject", ref, "closed"])
        self.refused(HARRIET, [GWEN], manifest_package(HARRIET, [GWEN], {"episode": ref, "child": child}), 550, "5.7.1",
                     ["/episode", ref, "closed"])
        handover_closed = dict(handover, sender=HARRIET, operations=[{"op": "handover", "lead": GWEN}])
        self.refused(HARRIET, [GWEN], manifest_package(HARRIET, [GWEN], handover_closed), 550, "5.7.1",
                     ["/operations/0", "closed"])

        # The child may have a new episode now.
        self.accepted(GWEN, [HARRIET], manifest_package(GWEN, [HARRIET], opening))
        self.assertEqual(len([r for r in self.episodes() if r not in before]), 2)

    def test_bad_manifests(self):
        ref = self.env.info["episodes"][0]["reference"]  # open, priya leads, gwen and harriet on the team
        messages, episodes = len(self.env.messages()), self.episodes()
        base = {"episode": ref, "child": "DEV-CHILD-0001"}
        cases = [
            ("unknown episode", dict(base, episode="CAF-2099-999999"), 550, "5.7.1",
             ["/episode", "no episode has the reference CAF-2099-999999"]),
            ("unknown section", dict(base, documents=[{"part": "caf-form.pdf", "sections": ["childs-details", "health"]}]),
             550, "5.6.0", ["/documents/0/sections/1", "six CAF sections"]),
            ("override without a reason", dict(base, override_reason=""), 550, "5.6.0", ["/override_reason"]),
            ("open naming a reference", dict(base, consent=CONSENT_TEAM,
                                             operations=[{"op": "open", "lead": GWEN, "members": [HARRIET]}]),
             550, "5.6.0", ["/episode", "must be left out"]),
            ("open without consent", {"child": "IT-NEW-1", "operations": [{"op": "open", "lead": GWEN, "members": [HARRIET]}]},
             550, "5.6.0", ["/consent"]),
            ("open with an unknown lead", {"child": "IT-NEW-2", "consent": CONSENT_TEAM,
                                          "operations": [{"op": "open", "lead": "nobody@school.cafgate.test", "members": [HARRIET]}]},
             550, "5.7.1", ["/operations/0/lead", "no practitioner"]),
            ("a second open for a sample child", {"child": "dev-child-0001", "consent": CONSENT_TEAM,
                                                  "operations": [{"op": "open", "lead": GWEN, "members": [HARRIET]}]},
             550, "5.7.1", ["/operations/0", "already has an open episode", ref]),
            ("handover by a member", dict(base, operations=[{"op": "handover", "lead": GWEN}]), 550, "5.7.1",
             ["/operations/0", "only the lead professional"]),
            ("a team change", dict(base, operations=[{"op": "add-members", "members": [RITA]}]), 550, "5.6.0",
             ["/operations/0/op", "add-members"]),
        ]
        for name, manifest, code, enhanced, words in cases:
            with self.subTest(name):
                self.refused(GWEN, [HARRIET], manifest_package(GWEN, [HARRIET], manifest), code, enhanced, words)
        # A transition the CAF process does not allow, asked by the lead.
        self.refused(PRIYA, [HARRIET], manifest_package(PRIYA, [HARRIET], dict(base, sender=PRIYA, operations=[{"op": "transition", "state": "preparation"}])),
                     550, "5.7.1", ["/operations/0", "cannot move to preparation"])
        self.assertEqual(len(self.env.messages()), messages, "cafgate message list: a refused package was stored")
        self.assertEqual(self.episodes(), episodes, "cafgate episode list: a refused package changed an episode")
