package integration

// The pickup page through the built binary, in headless Chromium: `cafgate dev --ports auto` is
// started as a user starts it; a package goes in over SMTP submission to a recipient without a
// certificate; the notification is read back from their hosted mailbox over IMAP; the browser follows
// its link, signs in with the password and a TOTP code, survives a restart of the gateway (sessions
// live in the store of record), and downloads the one document the recipient may see, byte for byte.
// Then the sender signs in to the links page and withdraws the link, which ends the recipient's
// session at once. Named ^TestPickupInBrowser so CI runs it in the step without -race (integration/ci.sh).

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const (
	binEpisode = "CAF-2026-000001" // the quick start's first sample episode (priya leads, harriet is on the team)
	binLead    = "priya.placeholder@health.cafgate.test"
	binRcpt    = "harriet.example@school.cafgate.test" // school accounts have no S/MIME certificate
)

func TestPickupInBrowserThroughTheBinary(t *testing.T) {
	g := startGateway(t)
	info := g.Info()
	conf := tlsConfig(t, info)
	accounts := map[string]account{}
	for _, a := range info.Accounts {
		accounts[a.Mail] = a
	}
	lead, rcpt := accounts[binLead], accounts[binRcpt]
	if lead.Password == "" || rcpt.Password == "" || rcpt.Cert != "" || rcpt.TOTPSecret == "" {
		t.Fatalf("dev.json: the sample lead and a recipient without a certificate are needed: %+v %+v", lead.Mail, rcpt.Mail)
	}
	// Consent that withholds one section from the recipient, so one document must stay back.
	if _, errs, code := g.cli("consent", "record", binEpisode, "--given-by", "parent", "--grant", "team",
		"--refuse", "person="+binRcpt+":family-and-environment", "--by", "integration test"); code != 0 {
		t.Fatalf("consent record: %d %s", code, errs)
	}

	allowed, withheld := randomBytes(t, 3000), randomBytes(t, 2000)
	marker := "Subject-Marker-" + randomToken(8)
	res := submitOnce(info, "submission", conf, lead, []string{binRcpt}, twoDocuments(lead.Mail, marker, allowed, withheld))
	if res.Err != nil || res.Reply.Code != 250 {
		t.Fatalf("submission: %s", res)
	}
	pkgID := res.Reply.AcceptedID()

	note := imapFirstMessage(t, info, conf, rcpt)
	for _, bad := range []string{marker, "action-plan", "family-notes", "DEV-CHILD", "conclusions-and-actions", "family-and-environment"} {
		if strings.Contains(note, bad) {
			t.Fatalf("the notification contains %q", bad)
		}
	}
	link := regexp.MustCompile(`https://[^\s"<>]+/pickup/l/[A-Za-z0-9_-]+`).FindString(note)
	if link == "" {
		t.Fatalf("no link in the notification:\n%s", note)
	}
	token := link[strings.LastIndex(link, "/")+1:]

	c := startChrome(t, serverCert(t, info, conf))
	tab := c.tab()
	c.open(tab, link)
	c.shot(tab, "signin")
	c.fill(tab, "mail", rcpt.Mail, "password", rcpt.Password, "code", totpNow(t, rcpt.TOTPSecret))
	c.submit(tab, "main button[type=submit]", "#agency")
	c.shot(tab, "package")
	table := c.text(tab, "table.docs tbody")
	if !strings.Contains(table, "action-plan.pdf") || strings.Contains(table, "family-notes") || strings.Contains(table, "message") {
		t.Fatalf("documents shown: %q (want only the action plan)", table)
	}

	// A restart signs nobody out: the session is in the store of record. (The new run has new ports;
	// cookies are per host, not per port.)
	g.stop()
	info = g.start()
	u, _ := url.Parse(link)
	u.Host = u.Hostname() + ":" + info.Listen["https"][strings.LastIndex(info.Listen["https"], ":")+1:]
	base := u.Scheme + "://" + u.Host
	c.open(tab, base+"/pickup/package")
	if got := c.text(tab, "h1"); !strings.Contains(got, "Your package") {
		t.Fatalf("after the restart the package page shows %q", got)
	}
	c.shot(tab, "package-after-restart")
	got, name := c.download(tab, "#download-1")
	if !strings.HasSuffix(name, "action-plan.pdf") || !bytes.Equal(got, allowed) {
		t.Fatalf("downloaded %q (%d bytes), want the action plan equal to the allowed document", name, len(got))
	}

	// The sender withdraws the link from the links page; the recipient's session ends with it.
	lt := c.tab()
	c.open(lt, base+"/pickup/links")
	c.shot(lt, "links-signin")
	c.fill(lt, "mail", lead.Mail, "password", lead.Password, "code", totpNow(t, lead.TOTPSecret))
	c.submit(lt, "main button[type=submit]", "ul.links")
	linkID := ""
	if ids, err := chromedp.Run(lt, chromedp.Evaluate[[]string](`[...document.querySelectorAll("ul.links > li")].map(e => e.id)`)); err != nil || len(ids) != 1 {
		t.Fatalf("links listed: %v %v", ids, err)
	} else {
		linkID = strings.TrimPrefix(ids[0], "link-")
	}
	if !strings.Contains(c.text(lt, "#link-"+linkID), binRcpt) {
		t.Fatal("the listed link does not name its recipient")
	}
	c.shot(lt, "links")
	if !c.fitsWidth(lt) {
		t.Error("the links page needs horizontal scrolling at 320 px")
	}
	c.do(lt, chromedp.SendKeys(chromedp.ID("reason-"+linkID), "Sent before the consent changed"))
	c.submit(lt, "#revoke-"+linkID, "p.info")
	c.shot(lt, "links-revoked")
	c.open(tab, base+"/pickup/package")
	if got := c.text(tab, "#message"); !strings.Contains(got, "session has ended") {
		t.Fatalf("the recipient's page after the revocation: %q", got)
	}
	c.open(tab, base+"/pickup/l/"+token) // the notification's link, on the new run's port
	if got := c.text(tab, "#message"); !strings.Contains(got, "withdrawn") {
		t.Fatalf("the link after the revocation: %q", got)
	}

	out, errs, code := g.cli("ledger", "show", "--package", pkgID, "--type", "revoked", "--reason", "integration test", "--operator", "integration", "--json")
	if code != 0 || !strings.Contains(out, lead.Mail+" (pickup page)") || !strings.Contains(out, "Sent before the consent changed") {
		t.Fatalf("ledger show: %d %s %s", code, out, errs)
	}
	if strings.Contains(g.stderr(), token) || strings.Contains(g.stderr(), token[17:]) {
		t.Fatal("the link token reached the log")
	}
	g.stop()
}

// twoDocuments is a plain e-mail for the sample episode with two labelled attachments.
func twoDocuments(from, marker string, allowed, withheld []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: [%s] %s\r\nDate: %s\r\nMessage-ID: <%s@it.cafgate.test>\r\n",
		from, binRcpt, binEpisode, marker, time.Now().Format(time.RFC1123Z), randomToken(12))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCovering note " + marker + "\r\n")
	for _, d := range []struct {
		name string
		body []byte
	}{{"[CAF: conclusions-and-actions] action-plan.pdf", allowed}, {"[CAF: family-and-environment] family-notes.pdf", withheld}} {
		fmt.Fprintf(&b, "--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", d.name)
		enc := base64.StdEncoding.EncodeToString(d.body)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--b1--\r\n")
	return []byte(b.String())
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func totpNow(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, time.Now(), totp.ValidateOpts{Digits: otp.DigitsSix, Period: 30})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serverCert is the certificate the HTTPS listener presents (the browser pins its key).
func serverCert(t *testing.T, info *devInfo, conf *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", info.Listen["https"], conf)
	if err != nil {
		t.Fatalf("TLS to the HTTPS listener: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// imapFirstMessage waits up to 60 s for a message in a's hosted INBOX and returns it whole.
func imapFirstMessage(t *testing.T, info *devInfo, conf *tls.Config, a account) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := imapclient.DialTLS(info.Listen["imaps"], &imapclient.Options{TLSConfig: conf})
		if err != nil {
			t.Fatalf("IMAP: %v", err)
		}
		if err := c.Login(a.Mail, a.Password).Wait(); err != nil {
			c.Close()
			t.Fatalf("IMAP login: %v", err)
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			c.Close()
			t.Fatalf("IMAP select: %v", err)
		}
		if sel.NumMessages > 0 {
			section := &imap.FetchItemBodySection{}
			msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			c.Logout().Wait()
			c.Close()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("IMAP fetch: %v (%d messages)", err, len(msgs))
			}
			return decodeMail(t, msgs[0].FindBodySection(section))
		}
		c.Logout().Wait()
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no notification in %s's INBOX after 60 s", a.Mail)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// decodeMail returns a message's header and its body with any quoted-printable encoding undone.
func decodeMail(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the notification does not parse: %v", err)
	}
	body, _ := io.ReadAll(m.Body)
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	}
	var h strings.Builder
	for k, vs := range m.Header {
		for _, v := range vs {
			h.WriteString(k + ": " + v + "\n")
		}
	}
	return h.String() + "\n" + string(body)
}
