"""SMTP submission steps for the LDAP end-to-end test (integration/ldap_test.go); standard library only.

    python3 ldap_smtp.py STEP SENDER PASSWORD [RCPT]

Environment: LDAP_IT_HOST, LDAP_IT_PORT (submission, STARTTLS), LDAP_IT_CA (CA file), and
LDAP_IT_SOURCE (optional: the loopback address to connect from, so that refusals from different
steps do not add up in the gateway's per-address limit on failed sign-ins).
Each step prints one JSON object per SMTP answer it checks: {"stage", "code", "text"}.
  send        STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA
  auth        STARTTLS, AUTH PLAIN only
  rcpt-later  AUTH and MAIL, then prints {"stage": "ready"} and waits for a line on stdin before RCPT
"""

import json
import os
import smtplib
import ssl
import sys

# The package format (episode reference in the Subject, ...) is the other Python tests' own.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
from cafgate_it import make_message  # noqa: E402


def out(stage, code=0, text=""):
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    print(json.dumps({"stage": stage, "code": code, "text": text}), flush=True)


def connect():
    ctx = ssl.create_default_context(cafile=os.environ["LDAP_IT_CA"])
    source = os.environ.get("LDAP_IT_SOURCE")
    s = smtplib.SMTP(os.environ["LDAP_IT_HOST"], int(os.environ["LDAP_IT_PORT"]), timeout=30,
                     source_address=(source, 0) if source else None)
    s.ehlo("it.cafgate.test")
    s.starttls(context=ctx)
    s.ehlo("it.cafgate.test")
    return s


def login(s, user, password):
    try:
        s.user, s.password = user, password
        code, text = s.auth("PLAIN", s.auth_plain, initial_response_ok=True)  # one attempt, one mechanism
    except smtplib.SMTPAuthenticationError as e:
        code, text = e.smtp_code, e.smtp_error
    out("auth", code, text)
    return code == 235


def main():
    step, sender, password = sys.argv[1:4]
    rcpt = sys.argv[4] if len(sys.argv) > 4 else None
    s = connect()
    try:
        if not login(s, sender, password) or step == "auth":
            return
        code, text = s.mail(sender)
        out("mail", code, text)
        if code != 250:
            return
        if step == "rcpt-later":
            out("ready")
            sys.stdin.readline()
        code, text = s.rcpt(rcpt)
        out("rcpt", code, text)
        if code != 250 or step != "send":
            return
        try:
            code, text = s.data(make_message(sender, rcpt, subject="signed in against slapd"))
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        out("data", code, text)
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


if __name__ == "__main__":
    main()
