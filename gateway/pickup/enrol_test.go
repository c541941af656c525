package pickup

import (
	"bytes"
	"context"
	"encoding/base64"
	"html"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

var (
	qrRe     = regexp.MustCompile(`src="data:image/png;base64,([A-Za-z0-9+/=&#;]+)"`)
	secretRe = regexp.MustCompile(`<code id="secret">([A-Z2-7 ]+)</code>`)
)

func TestEnrolmentWithQRCodeThenSignIn(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ec, err := e.store.IssueEnrolment(ctx, bob, "admin:test", 0)
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	form := b.get(linkPath(e.token) + "/enrol")
	if form.status != 200 {
		t.Fatalf("enrol page: %d", form.status)
	}
	mustContain(t, form, text("enrol.intro"), `action="`+linkPath(e.token)+`/enrol"`)
	// A wrong enrolment code and a wrong password get the same answer.
	var answers []string
	for _, c := range [][2]string{{"bob-password", "AAAA-BBBB-CCCC-DDDD"}, {"wrong", ec}} {
		p := b.post(linkPath(e.token)+"/enrol", url.Values{"csrf": {form.csrf(t)}, "mail": {bob}, "password": {c[0]}, "enrolcode": {c[1]}})
		if p.status != http.StatusUnauthorized {
			t.Fatalf("refused enrolment: %d", p.status)
		}
		mustContain(t, p, text("enrol.failed"))
		answers = append(answers, normal(p.body))
	}
	if answers[0] != answers[1] {
		t.Fatal("wrong code and wrong password answered differently")
	}
	p := b.post(linkPath(e.token)+"/enrol", url.Values{"csrf": {form.csrf(t)}, "mail": {bob}, "password": {"bob-password"}, "enrolcode": {ec}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"enrol/confirm" {
		t.Fatalf("enrolment start: %d %v\n%s", p.status, p.header, p.body)
	}
	qr := b.get(Prefix + "enrol/confirm")
	m, s := qrRe.FindStringSubmatch(qr.body), secretRe.FindStringSubmatch(qr.body)
	if qr.status != 200 || m == nil || s == nil {
		t.Fatalf("QR page: %d\n%s", qr.status, qr.body)
	}
	raw, _ := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() != 240 {
		t.Fatalf("QR image: %v", err)
	}
	secret := strings.ReplaceAll(s[1], " ", "")
	codeAt := func(at time.Time) string {
		c, _ := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Digits: otp.DigitsSix})
		return c
	}
	if p := b.post(Prefix+"enrol/confirm", url.Values{"csrf": {qr.csrf(t)}, "code": {"000000"}}); p.status != http.StatusUnauthorized {
		t.Fatalf("wrong first code: %d", p.status)
	}
	done := b.post(Prefix+"enrol/confirm", url.Values{"csrf": {qr.csrf(t)}, "code": {codeAt(e.clk.Now())}})
	if done.status != 200 {
		t.Fatalf("confirm: %d\n%s", done.status, done.body)
	}
	mustContain(t, done, text("enrol.done"), `href="`+linkPath(e.token)+`"`)
	// The old authenticator no longer works; the new one does, from the next step.
	if p := e.browser().signIn(e.token, bob, "bob-password", e.code(bob, 30*time.Second)); p.status != http.StatusUnauthorized {
		t.Fatalf("old authenticator after re-enrolment: %d", p.status)
	}
	e.clk.Add(30 * time.Second)
	if p := e.browser().signIn(e.token, bob, "bob-password", codeAt(e.clk.Now())); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in with the new authenticator: %d", p.status)
	}
	if n := e.ledgerCount("signin", `json_extract(data, '$.via') = 'pickup-enrol'`); n != 1 {
		t.Fatalf("enrolment events: %d", n)
	}
	// The enrolment code works once.
	b2 := e.browser()
	f2 := b2.get(Prefix + "enrol")
	if p := b2.post(Prefix+"enrol", url.Values{"csrf": {f2.csrf(t)}, "mail": {bob}, "password": {"bob-password"}, "enrolcode": {ec}}); p.status != http.StatusUnauthorized {
		t.Fatalf("enrolment code used twice: %d", p.status)
	}
}

func TestEnrolConfirmNeedsItsSession(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	if p := b.get(Prefix + "enrol/confirm"); p.status != http.StatusUnauthorized {
		t.Fatalf("QR page without a session: %d", p.status)
	}
	// A package session is not an enrolment session.
	b.signIn(e.token, bob, "bob-password", e.code(bob, 0))
	if p := b.get(Prefix + "enrol/confirm"); p.status != http.StatusUnauthorized {
		t.Fatalf("QR page in a package session: %d", p.status)
	}
}
