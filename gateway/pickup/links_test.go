package pickup

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"cafgate/directory"
)

const alice = "alice@agency.example" // the sender of M1 in newEnv

// withAlice gives the sender a password and an authenticator.
func withAlice(t *testing.T, e *env) {
	t.Helper()
	e.auth.passwords[alice] = "alice-password"
	key, _ := totp.Generate(totp.GenerateOpts{Issuer: "t", AccountName: alice})
	e.secrets[alice] = key.Secret()
	if err := e.store.ImportTOTPSecret(context.Background(), alice, key.Secret()); err != nil {
		t.Fatal(err)
	}
}

// linksSignIn signs in to the links page as mail and returns the answer to the post.
func (b *browser) linksSignIn(mail, password, code string) *page {
	b.e.t.Helper()
	form := b.get(Prefix + "links")
	if form.status != 200 {
		b.e.t.Fatalf("links sign-in form: %d", form.status)
	}
	mustContain(b.e.t.(*testing.T), form, text("links.signin.intro"))
	return b.post(Prefix+"links/signin", url.Values{"csrf": {form.csrf(b.e.t)}, "mail": {mail}, "password": {password}, "code": {code}})
}

func TestSenderSeesAndRevokesOutstandingLinks(t *testing.T) {
	e := newEnv(t, nil)
	withAlice(t, e)
	bobs, _ := signedIn(t, e) // the recipient is signed in to the package

	a := e.browser()
	if p := a.linksSignIn(alice, "alice-password", "000000"); p.status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", p.status)
	} else {
		mustContain(t, p, text("signin.failed"))
		mustNotContain(t, p, e.link.ID)
	}
	e.clk.Add(30e9)
	if p := a.linksSignIn(alice, "alice-password", e.code(alice, 0)); p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"links" {
		t.Fatalf("sign-in: %d %v", p.status, p.header)
	}
	list := a.get(Prefix + "links")
	mustContain(t, list, text("links.intro"), e.link.ID, bob, `action="`+Prefix+"links/"+e.link.ID+`/revoke"`)
	mustNotContain(t, list, e.token, "secret child subject")
	csrf := list.csrf(t)
	path := Prefix + "links/" + e.link.ID + "/revoke"

	// Another practitioner (here the other recipient) sees none and can withdraw none.
	c := e.browser()
	if p := c.linksSignIn(carol, "carol-password", e.code(carol, 0)); p.status != http.StatusSeeOther {
		t.Fatalf("carol's sign-in: %d", p.status)
	}
	cl := c.get(Prefix + "links")
	mustContain(t, cl, text("links.none"))
	if p := c.post(path, url.Values{"csrf": {cl.csrf(t)}, "reason": {"mischief"}}); p.status != http.StatusNotFound {
		t.Fatalf("carol revoking bob's link: %d", p.status)
	}

	// No form token, no reason: nothing is withdrawn.
	if p := a.post(path, url.Values{"csrf": {"forged"}, "reason": {"x"}}); p.status != http.StatusForbidden {
		t.Fatalf("forged form token: %d", p.status)
	}
	if p := a.post(path, url.Values{"csrf": {csrf}, "reason": {"  \n "}}); p.status != http.StatusUnprocessableEntity {
		t.Fatalf("no reason: %d", p.status)
	} else {
		mustContain(t, p, text("links.reason.empty"))
	}
	if l, _ := e.store.LinkByID(context.Background(), e.link.ID); l.State != "active" {
		t.Fatalf("link %s after refused revocations", l.State)
	}
	if p := bobs.get(Prefix + "package"); p.status != 200 {
		t.Fatalf("recipient before the revocation: %d", p.status)
	}

	p := a.post(path, url.Values{"csrf": {csrf}, "reason": {"Sent to the wrong\nschool"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("revocation: %d\n%s", p.status, p.body)
	}
	after := a.get(p.header.Get("Location"))
	mustContain(t, after, text("links.revoked"), text("links.none"))
	if n := e.ledgerCount("revoked", `json_extract(data, '$.by') = 'alice@agency.example (pickup page)'`,
		`json_extract(data, '$.reason') = 'Sent to the wrong school'`, `json_extract(data, '$.link') = '`+e.link.ID+`'`); n != 1 {
		t.Fatalf("%d revoked events naming alice and her reason", n)
	}
	// The recipient's session through the link ended with it.
	if q := bobs.get(Prefix + "package"); q.status != http.StatusUnauthorized || strings.Contains(q.body, "action-plan") {
		t.Fatalf("recipient after the revocation: %d", q.status)
	}
	if q := a.post(path, url.Values{"csrf": {csrf}, "reason": {"again"}}); q.status != http.StatusConflict {
		t.Fatalf("revoking twice: %d", q.status)
	}
	// Sign-out ends the links session.
	if q := a.post(Prefix+"signout", url.Values{"csrf": {csrf}}); q.status != 200 {
		t.Fatalf("sign-out: %d", q.status)
	}
	if q := a.get(Prefix + "links"); !strings.Contains(q.body, text("links.signin.intro")) {
		t.Fatal("the links page after sign-out is not the sign-in form")
	}
}

func TestLinksSessionDoesNotOpenPackages(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	// bob, a recipient, signs in to the links page: that session is no package session.
	if p := b.linksSignIn(bob, "bob-password", e.code(bob, 0)); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	if p := b.get(Prefix + "package"); p.status != http.StatusUnauthorized {
		t.Fatalf("package page with a links session: %d", p.status)
	}
	// and a package session does not open the links page.
	e.clk.Add(30e9)
	pb, _ := signedIn(t, e)
	if p := pb.get(Prefix + "links"); !strings.Contains(p.body, text("links.signin.intro")) {
		t.Fatalf("links page with a package session: %d", p.status)
	}
}

func TestADisabledSenderCannotRevoke(t *testing.T) {
	var disabled atomic.Bool
	e := newEnv(t, func(o *Options) {
		o.Directory = lookupFunc(func(ctx context.Context, mail string) (*directory.Practitioner, error) {
			return &directory.Practitioner{Mail: mail, Disabled: disabled.Load(), VettingValidUntil: time.Now().Add(time.Hour)}, nil
		})
	})
	withAlice(t, e)
	a := e.browser()
	if p := a.linksSignIn(alice, "alice-password", e.code(alice, 0)); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	list := a.get(Prefix + "links")
	mustContain(t, list, e.link.ID)
	disabled.Store(true)
	p := a.post(Prefix+"links/"+e.link.ID+"/revoke", url.Values{"csrf": {list.csrf(t)}, "reason": {"x"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("revocation by a disabled practitioner: %d", p.status)
	}
	if l, _ := e.store.LinkByID(context.Background(), e.link.ID); l.State != "active" {
		t.Fatalf("link %s", l.State)
	}
	disabled.Store(false)
	if q := a.get(Prefix + "links"); !strings.Contains(q.body, text("links.signin.intro")) {
		t.Fatal("the session of a disabled practitioner survived")
	}
}
