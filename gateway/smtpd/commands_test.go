package smtpd

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"cafgate/gateway/fault"
)

type step struct {
	send string // a command line without CRLF, or raw bytes when it ends in "\n"
	want string // prefix of the reply's last line
}

var idRe = regexp.MustCompile(`\(ID [0-9A-Z]{16}\)$`)

// TestRepliesAfterSignIn drives a signed-in TLS session with raw lines; every refusal this package or
// the intake makes must carry its fault face and an ID.
func TestRepliesAfterSignIn(t *testing.T) {
	msg := "DATA\r\n"
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"accepted", []step{{"MAIL FROM:<alice@a.example>", "250 2.0.0"}, {"RCPT TO:<bob@b.example>", "250 2.0.0"},
			{msg, "354 "}, {"Subject: x\r\n\r\nhello\r\n.\r\n", "250 2.0.0 Accepted as MSG001: quote this ID"}}},
		{"sender case-insensitive", []step{{"MAIL FROM:<Alice@A.example>", "250 2.0.0"}}},
		{"sender mismatch", []step{{"MAIL FROM:<mallory@a.example>", "550 5.7.1 You may only send as yourself"}}},
		{"null sender", []step{{"MAIL FROM:<>", "550 5.7.1 "}}},
		{"nested MAIL", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"MAIL FROM:<alice@a.example>", "501 5.5.4 A message is already open"}}},
		{"unknown recipient", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"RCPT TO:<nobody@b.example>", "550 5.1.1 No practitioner"}}},
		{"lapsed recipient", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"RCPT TO:<lapsed@b.example>", "550 5.7.1 This recipient cannot send or receive through the gateway: the vetting checks have lapsed"}}},
		{"disabled recipient", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"RCPT TO:<disabled@b.example>", "550 5.7.1 This recipient cannot send or receive through the gateway: the directory account is disabled"}}},
		{"directory down", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"RCPT TO:<down@b.example>", "451 4.4.3 The agency directory cannot be reached"}}},
		// Bare CR and NUL in a command line are refused before go-smtp parses it (guard.go).
		{"CR in sender", []step{{"MAIL FROM:<alice@a.example\rX>", "500 5.5.2 A command line held a bare CR"}}},
		{"NUL in sender", []step{{"MAIL FROM:<alice@a.example\x00>", "500 5.5.2 A command line held a NUL byte"}}},
		{"CR in recipient", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"RCPT TO:<bob@b.example\r>", "500 5.5.2 A command line held a bare CR"}}},
		{"NUL in recipient", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {"RCPT TO:<bob\x00@b.example>", "500 5.5.2 "}}},
		{"DATA without recipients", []step{{"MAIL FROM:<alice@a.example>", "250 "}, {msg, "502 5.5.1"}}},
		{"second AUTH", []step{{"AUTH PLAIN " + plainIR("", alice, alicePw), "503 5.5.1"}}},
		{"RSET keeps sign-in", []step{{"RSET", "250 "}, {"MAIL FROM:<alice@a.example>", "250 "}}},
		{"EHLO again keeps sign-in", []step{{"EHLO again.test", "250 "}, {"MAIL FROM:<alice@a.example>", "250 "}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, &fakeIntake{}, Options{})
			c := h.signedIn(t)
			runSteps(c, tc.steps)
		})
	}
}

func runSteps(c *client, steps []step) {
	c.t.Helper()
	for _, s := range steps {
		var got string
		if strings.HasSuffix(s.send, "\n") {
			c.send(s.send)
			got = c.expect(s.want)
		} else {
			got = c.cmd(s.send, s.want)
		}
		if (got[0] == '4' || got[0] == '5') && !goSMTPReply(got) && !idRe.MatchString(got) {
			c.t.Errorf("refusal %q has no fault ID", got)
		}
	}
}

// goSMTPReply tells go-smtp's own sequence and syntax replies, which carry no fault ID.
func goSMTPReply(r string) bool {
	for _, p := range []string{"500 ", "502 ", "503 ", "501 5.0.0 ", "501 5.5.2 "} {
		if strings.HasPrefix(r, p) {
			return true
		}
	}
	return false
}

func TestRepliesBeforeSignIn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		implicit bool
		steps    []step
	}{
		{"AUTH before STARTTLS", false, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN " + plainIR("", alice, alicePw), "530 5.7.0 Must issue a STARTTLS command first"}}},
		{"AUTH LOGIN before STARTTLS", false, []step{{"EHLO c.test", "250 "}, {"AUTH LOGIN", "530 5.7.0 Must issue a STARTTLS command first"}}},
		{"MAIL before STARTTLS", false, []step{{"EHLO c.test", "250 "}, {"MAIL FROM:<alice@a.example>", "530 5.7.0 Must issue a STARTTLS"}}},
		{"MAIL before AUTH", true, []step{{"EHLO c.test", "250 "}, {"MAIL FROM:<alice@a.example>", "530 5.7.0 Please sign in"}}},
		{"RCPT before MAIL", true, []step{{"EHLO c.test", "250 "}, {"RCPT TO:<bob@b.example>", "502 5.5.1"}}},
		{"STARTTLS under TLS", true, []step{{"EHLO c.test", "250 "}, {"STARTTLS", "502 5.5.1"}}},
		{"wrong password", true, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN " + plainIR("", alice, "wrong"), "535 5.7.8 Sign-in failed"}}},
		{"unknown user", true, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN " + plainIR("", "nobody@a.example", alicePw), "535 5.7.8 "}}},
		{"authorization identity differs", true, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN " + plainIR(bob, alice, alicePw), "535 5.7.8 "}, {"MAIL FROM:<alice@a.example>", "530 5.7.0"}}},
		{"authorization identity same", true, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN " + plainIR("ALICE@a.example", alice, alicePw), "235 "}}},
		{"PLAIN without NULs", true, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN " + b64("alice"), "535 5.7.8 "}}},
		{"PLAIN challenge", true, []step{{"EHLO c.test", "250 "}, {"AUTH PLAIN", "334 "}, {plainIR("", alice, alicePw), "235 "}}},
		{"LOGIN", true, []step{{"EHLO c.test", "250 "}, {"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {b64(alice), "334 UGFzc3dvcmQ6"}, {b64(alicePw), "235 "}, {"MAIL FROM:<alice@a.example>", "250 "}}},
		{"LOGIN initial response", true, []step{{"EHLO c.test", "250 "}, {"AUTH LOGIN " + b64(alice), "334 UGFzc3dvcmQ6"}, {b64("nope"), "535 5.7.8 "}}},
		{"LOGIN CR in user", true, []step{{"EHLO c.test", "250 "}, {"AUTH LOGIN " + b64(alice+"\r"), "334 "}, {b64(alicePw), "535 5.7.8 "}}},
		{"LOGIN NUL in password", true, []step{{"EHLO c.test", "250 "}, {"AUTH LOGIN " + b64(alice), "334 "}, {b64(alicePw + "\x00"), "535 5.7.8 "}}},
		{"cancelled", true, []step{{"EHLO c.test", "250 "}, {"AUTH LOGIN", "334 "}, {"*", "501 5.0.0"}}},
		{"unknown mechanism", true, []step{{"EHLO c.test", "250 "}, {"AUTH CRAM-MD5", "501 5.5.4 Unsupported sign-in mechanism"}}},
		{"EHLO with control character", true, []step{{"EHLO c\x01.test", "501 5.5.4 The EHLO name"}, {"MAIL FROM:<alice@a.example>", "502 5.5.1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, &fakeIntake{}, Options{})
			var c *client
			if tc.implicit {
				c = h.tls(t)
			} else {
				c = h.plain(t)
			}
			runSteps(c, tc.steps)
		})
	}
}

func TestEHLOAdvertisesAuthOnlyUnderTLS(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxMessageBytes: 12345})
	c := h.plain(t)
	caps := c.ehlo()
	if !strings.Contains(caps, "STARTTLS") || strings.Contains(caps, "AUTH") || !strings.Contains(caps, "SIZE") {
		t.Fatalf("EHLO before TLS: %q", caps)
	}
	c = h.tls(t)
	caps = c.ehlo()
	if strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO under TLS: %q", caps)
	}
}

func TestAuthDirectoryDown(t *testing.T) {
	f := &fakeIntake{authErr: fault.New(fault.AuthDirectoryUnavailable, "", errors.New("ldap: timeout"))}
	h := start(t, f, Options{})
	c := h.tls(t)
	c.ehlo()
	got := c.cmd("AUTH PLAIN "+plainIR("", alice, alicePw), "454 4.7.0 The agency directory cannot be reached")
	if strings.Contains(got, "ldap") {
		t.Fatalf("cause leaked: %q", got)
	}
	// A directory failure is not a failed sign-in.
	if n := h.srv.fails.Count("127.0.0.1"); n != 0 {
		t.Fatalf("counted %d failures", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxRecipients: 3})
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	for _, r := range []string{"r1", "r2", "r3"} {
		c.cmd("RCPT TO:<"+r+"@b.example>", "250 ")
	}
	c.cmd("RCPT TO:<r4@b.example>", "452 4.5.3 Too many recipients")
	c.cmd("DATA", "354 ")
	c.send("\r\nthree\r\n.\r\n")
	c.expect("250 2.0.0 Accepted")
	if got := h.in.last().Recipients; len(got) != 3 {
		t.Fatalf("recipients %q", got)
	}
	// A refused recipient is not counted.
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<nobody@b.example>", "550 ")
	for _, r := range []string{"r1", "r2", "r3"} {
		c.cmd("RCPT TO:<"+r+"@b.example>", "250 ")
	}
}

func TestAcceptErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
		leak string
	}{
		{"store full", fault.New(fault.StoreFull, "", errors.New("disk full: /var/lib")), "452 4.3.1 The gateway is out of storage space", "/var/lib"},
		{"store unavailable", fault.New(fault.StoreUnavailable, "", errors.New("database is locked")), "451 4.3.0 The gateway cannot store", "locked"},
		{"plain error", errors.New("sqlite: secret internal detail"), "451 4.3.0 Internal error", "secret internal detail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeIntake{acceptErr: tc.err}
			h := start(t, f, Options{})
			c := h.signedIn(t)
			c.cmd("MAIL FROM:<alice@a.example>", "250 ")
			c.cmd("RCPT TO:<bob@b.example>", "250 ")
			c.cmd("DATA", "354 ")
			c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
			got := c.expect(tc.want)
			if strings.Contains(got, tc.leak) {
				t.Fatalf("cause leaked: %q", got)
			}
			id := idRe.FindString(got)
			if id == "" {
				t.Fatalf("no ID in %q", got)
			}
			if _, ok := tc.err.(*fault.Error); !ok {
				// Not a fault: logged here, with the cause, under the ID the client saw.
				logs := h.logs.String()
				if !strings.Contains(logs, id[4:len(id)-1]) || !strings.Contains(logs, tc.leak) {
					t.Fatalf("log does not hold ID and cause: %s", logs)
				}
			}
			c.cmd("NOOP", "250 ")
		})
	}
}

func TestLongLineInData(t *testing.T) {
	h := start(t, &fakeIntake{}, Options{MaxLineLength: 100})
	c := h.signedIn(t)
	c.cmd("MAIL FROM:<alice@a.example>", "250 ")
	c.cmd("RCPT TO:<bob@b.example>", "250 ")
	c.cmd("DATA", "354 ")
	c.send(strings.Repeat("x", 200) + "\r\n.\r\n")
	c.expect("550 5.6.0 A line of the message is longer than 100 bytes")
	if _, _, n := h.in.counts(); n != 0 {
		t.Fatalf("accepted %d", n)
	}
	c.cmd("NOOP", "250 ") // the rest of the DATA was read: still in step
}
