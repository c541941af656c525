package integration

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"image"
	"image/png"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"cafgate/gateway/pickup"
	"cafgate/mailbox"
)

// en is the pages' English text.
var en = pickup.English()

// TestPickupInBrowser follows links from queued notifications in headless Chromium: opening a link
// consumes nothing, refusals look alike, a keyboard-only sign-in and the downloads (bytes equal to
// the allowed documents and nothing else), a replayed code, two parallel submissions of one code,
// enrolment with the QR code, another practitioner, revoked, withdrawn and expired links, too many
// attempts. Screenshots of every page are kept (see the log for where).
func TestPickupInBrowser(t *testing.T) {
	g := startPickupGateway(t, nil)
	c := startChrome(t, g.cert)
	var tokens []string
	keep := func(link string) string { tokens = append(tokens, tokenOf(link)); return link }

	link, url := g.notify(harriet, mailbox.LinkRequest{})
	keep(url)
	t.Run("opening the link consumes nothing", func(t *testing.T) { c.t = t; openingConsumesNothing(t, g, c, link, url) })
	t.Run("refusals look alike", func(t *testing.T) { c.t = t; refusalsLookAlike(t, g, c, url) })
	var used string
	t.Run("keyboard-only sign-in and downloads", func(t *testing.T) { c.t = t; used = signInAndDownload(t, g, c, link, url) })
	t.Run("a replayed code is refused", func(t *testing.T) {
		c.t = t
		tab := c.tab()
		signInForm(c, tab, url, harriet, g.passwords[harriet], used)
		c.submit(tab, "form button[type=submit]", ".error")
		if got := c.text(tab, ".error p"); got != en["signin.failed"] {
			t.Fatalf("replayed code: %q", got)
		}
	})
	t.Run("two parallel submissions of one code: one wins", func(t *testing.T) { c.t = t; parallelSubmissions(t, g, c, url) })
	gwenLink, gwenURL := g.notify(gwen, mailbox.LinkRequest{})
	keep(gwenURL)
	t.Run("enrolment with a QR code", func(t *testing.T) { c.t = t; enrolWithQR(t, g, c, gwenURL) })
	t.Run("another practitioner cannot open the link", func(t *testing.T) {
		c.t = t
		g.nextStep()
		tab := c.tab()
		signInForm(c, tab, gwenURL, harriet, g.passwords[harriet], g.code(harriet))
		c.submit(tab, "form button[type=submit]", "#message")
		c.shot(tab, "other-practitioner")
		if got := c.text(tab, "#message"); got != en["signin.other"] {
			t.Fatalf("harriet on gwen's link: %q", got)
		}
		if l, _ := g.store.LinkByID(context.Background(), gwenLink.ID); l.Downloads != 0 {
			t.Fatal("gwen's link was used")
		}
	})
	t.Run("revoked, withdrawn and expired links", func(t *testing.T) { c.t = t; endedLinks(t, g, c, keep) })
	t.Run("too many attempts lock the link", func(t *testing.T) {
		c.t = t
		_, u := g.notify(harriet, mailbox.LinkRequest{})
		keep(u)
		tab := c.tab()
		for i := range 5 {
			signInForm(c, tab, u, "nobody"+string(rune('a'+i))+"@school.cafgate.test", "wrong", "000000")
			c.submit(tab, "form button[type=submit]", ".error, #message")
		}
		c.shot(tab, "locked")
		if got := c.text(tab, "#message"); got != en["locked.link"] {
			t.Fatalf("after five failures: %q", got)
		}
	})
	c.t = t
	g.checkLogs(tokens...)
	if n := g.ledger("signin-failed"); n < 10 {
		t.Errorf("signin-failed events: %d", n)
	}
}

// signInForm opens a link and fills the sign-in form.
func signInForm(c *chrome, tab context.Context, url, mail, password, code string) {
	c.open(tab, url)
	c.fill(tab, "mail", mail, "password", password, "code", code)
}

func openingConsumesNothing(t *testing.T, g *pickupGateway, c *chrome, link *mailbox.Link, url string) {
	tab := c.tab()
	requests := chromedp.Events(tab, networkRequests)
	for range 3 {
		c.open(tab, url)
	}
	c.shot(tab, "signin")
	if !c.fitsWidth(tab) {
		t.Error("the sign-in page needs horizontal scrolling at 320 px")
	}
	body := c.text(tab, "main")
	if !strings.Contains(body, en["signin.intro"]) || strings.Contains(body, "Riverside") || strings.Contains(body, "action-plan") {
		t.Fatalf("sign-in page:\n%s", body)
	}
	l, err := g.store.LinkByID(context.Background(), link.ID)
	if err != nil || l.Downloads != 0 || !l.Opened.IsZero() || l.Failures != 0 || l.State != mailbox.LinkActive {
		t.Fatalf("opening changed the link: %+v %v", l, err)
	}
	if n := g.ledger("signin") + g.ledger("picked-up") + g.ledger("signin-failed"); n != 0 {
		t.Fatalf("opening the link wrote %d ledger events", n)
	}
	// No request the page made (its style sheet) carried a Referer, so the token went nowhere.
	ctx, cancel := context.WithTimeout(tab, 2*time.Second)
	defer cancel()
	seen := 0
	for ev, err := range requests {
		if err != nil {
			break
		}
		seen++
		for k, v := range ev.Request.Headers {
			if (strings.EqualFold(k, "Referer") && toString(v) != "") || strings.Contains(toString(v), tokenOf(url)) {
				t.Errorf("request for %s sent %s: %v", ev.Request.URL, k, v)
			}
		}
		if seen >= 6 || ctx.Err() != nil {
			break
		}
	}
	if seen < 4 {
		t.Fatalf("only %d requests seen", seen)
	}
}

func refusalsLookAlike(t *testing.T, g *pickupGateway, c *chrome, url string) {
	tab := c.tab()
	var answers []string
	for i, try := range [][3]string{
		{harriet, "wrong-password", g.code(harriet)},
		{harriet, g.passwords[harriet], "000000"},
		{"nobody@school.cafgate.test", g.passwords[harriet], g.code(harriet)},
	} {
		signInForm(c, tab, url, try[0], try[1], try[2])
		c.submit(tab, "form button[type=submit]", ".error")
		if i == 0 {
			c.shot(tab, "refused")
		}
		answers = append(answers, c.text(tab, ".error"))
	}
	if answers[0] != answers[1] || answers[1] != answers[2] || !strings.Contains(answers[0], en["signin.failed"]) {
		t.Fatalf("answers differ: %q", answers)
	}
}

// signInAndDownload signs harriet in with the keyboard only and takes the documents; it returns the
// code it used.
func signInAndDownload(t *testing.T, g *pickupGateway, c *chrome, link *mailbox.Link, url string) string {
	tab := c.tab()
	c.open(tab, url)
	code := g.code(harriet)
	c.do(tab, chromedp.KeyEvent("\t\t"))
	if id, _ := chromedp.Run(tab, chromedp.Evaluate[string]("document.activeElement.id")); id != "mail" {
		t.Fatalf("two tabs reach %q, not the mail field", id)
	}
	c.do(tab, chromedp.KeyEvent(harriet+"\t"+g.passwords[harriet]+"\t"+code+"\r"), chromedp.WaitVisible(chromedp.CSS("#agency")))
	c.shot(tab, "package")
	if !c.fitsWidth(tab) {
		t.Error("the package page needs horizontal scrolling at 320 px")
	}
	if got := c.text(tab, "#agency"); got != "Riverside Community Health" {
		t.Fatalf("agency %q", got)
	}
	want := g.allowedDocuments(harriet)
	table := c.text(tab, "table.docs tbody")
	for _, d := range g.pkg.Documents {
		if _, ok := want[d.Part]; ok != strings.Contains(table, d.Part) {
			t.Fatalf("document list %q; allowed %v", table, keys(want))
		}
	}
	got, name := c.download(tab, "#download-1")
	if !bytes.Equal(got, want[name]) {
		t.Fatalf("downloaded %s: %q, want %q", name, got, want[name])
	}
	zipped, _ := c.download(tab, "#download-all")
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil || len(zr.File) != len(want) {
		t.Fatalf("zip: %v (%d entries, want %d)", err, len(zr.File), len(want))
	}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b := new(bytes.Buffer)
		b.ReadFrom(rc)
		rc.Close()
		if !bytes.Equal(b.Bytes(), want[f.Name]) {
			t.Fatalf("zip entry %s differs from the allowed document", f.Name)
		}
	}
	if l, _ := g.store.LinkByID(context.Background(), link.ID); l.Downloads != 2 {
		t.Fatalf("downloads counted: %d", l.Downloads)
	}
	if n := g.ledger("picked-up"); n != 3 {
		t.Fatalf("picked-up events: %d (one view, two downloads)", n)
	}
	return code
}

func parallelSubmissions(t *testing.T, g *pickupGateway, c *chrome, url string) {
	g.nextStep()
	code := g.code(harriet)
	a := c.tab()
	b := c.sibling(a)
	for _, tab := range []context.Context{a, b} {
		signInForm(c, tab, url, harriet, g.passwords[harriet], code)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tab := range []context.Context{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(tab, 20*time.Second)
			defer cancel()
			errs[i] = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("form button[type=submit]")),
				chromedp.WaitVisible(chromedp.CSS("#agency, .error")))
		}()
	}
	wg.Wait()
	won := 0
	for i, tab := range []context.Context{a, b} {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if strings.HasSuffix(c.location(tab), pickup.Prefix+"package") {
			won++
		} else if got := c.text(tab, ".error p"); got != en["signin.failed"] {
			t.Fatalf("the losing tab shows %q", got)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 2 parallel submissions of one code succeeded", won)
	}
}

func enrolWithQR(t *testing.T, g *pickupGateway, c *chrome, url string) {
	ctx := context.Background()
	enrolCode, err := g.store.IssueEnrolment(ctx, gwen, "admin:test", 0)
	if err != nil {
		t.Fatal(err)
	}
	tab := c.tab()
	c.open(tab, url)
	c.submit(tab, `a[href$="/enrol"]`, "#enrolcode")
	c.shot(tab, "enrol")
	c.fill(tab, "mail", gwen, "password", g.passwords[gwen], "enrolcode", enrolCode)
	c.submit(tab, "form button[type=submit]", "#secret")
	c.shot(tab, "enrol-qr")
	if !c.fitsWidth(tab) {
		t.Error("the QR page needs horizontal scrolling at 320 px")
	}
	secret := strings.ReplaceAll(c.text(tab, "#secret"), " ", "")
	src, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector(".qr img").src`))
	if err != nil {
		t.Fatal(err)
	}
	checkQR(t, src, secret)
	g.secrets[gwen] = secret
	c.fill(tab, "code", g.code(gwen))
	c.submit(tab, "form button[type=submit]", "a.button")
	c.shot(tab, "enrol-done")
	c.submit(tab, "a.button", "#code")
	g.nextStep()
	c.fill(tab, "mail", gwen, "password", g.passwords[gwen], "code", g.code(gwen))
	c.submit(tab, "form button[type=submit]", "#agency")
	table := c.text(tab, "table.docs tbody")
	for name := range g.allowedDocuments(gwen) {
		if !strings.Contains(table, name) {
			t.Fatalf("gwen's documents %q lack %s", table, name)
		}
	}
}

// checkQR decodes the page's QR image and compares it, pixel for pixel, with the QR code of the
// otpauth URL of secret: the picture holds exactly that secret for that account.
func checkQR(t *testing.T, src, secret string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if err != nil {
		t.Fatalf("QR src: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	key, _ := totp.Generate(totp.GenerateOpts{Issuer: "CAF secure gateway", AccountName: gwen, Secret: sb,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	want, err := key.Image(240, 240)
	if err != nil {
		t.Fatal(err)
	}
	if !sameImage(img, want) {
		t.Fatalf("the QR code does not encode %s", key.URL())
	}
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				return false
			}
		}
	}
	return true
}

func endedLinks(t *testing.T, g *pickupGateway, c *chrome, keep func(string) string) {
	ctx := context.Background()
	revoked, u := g.notify(harriet, mailbox.LinkRequest{})
	keep(u)
	if err := g.store.RevokeLink(ctx, revoked.ID, "priya.placeholder@health.cafgate.test", "sent to the wrong school"); err != nil {
		t.Fatal(err)
	}
	tab := c.tab()
	c.open(tab, u)
	c.shot(tab, "revoked")
	if got := c.text(tab, "#message"); got != en["gone.revoked"] {
		t.Fatalf("revoked link: %q", got)
	}
	// Consent withdrawn after the notification: the episode's links are revoked.
	_, u = g.notify(harriet, mailbox.LinkRequest{Episode: "CAF-2026-000123"})
	keep(u)
	if n, err := g.store.RevokeLinksForEpisode(ctx, nil, "CAF-2026-000123", "consent withdrawn"); err != nil || n != 1 {
		t.Fatalf("RevokeLinksForEpisode = %d, %v", n, err)
	}
	c.open(tab, u)
	if got := c.text(tab, "#message"); got != en["gone.revoked"] {
		t.Fatalf("link after consent withdrawal: %q", got)
	}
	// Withdrawn while signed in: the next download is refused.
	_, u = g.notify(harriet, mailbox.LinkRequest{})
	keep(u)
	g.nextStep()
	signInForm(c, tab, u, harriet, g.passwords[harriet], g.code(harriet))
	c.submit(tab, "form button[type=submit]", "#agency")
	g.withdrawn.Store(true)
	c.submit(tab, "#download-1", "#message")
	g.withdrawn.Store(false)
	c.shot(tab, "withdrawn")
	if got := c.text(tab, "#message"); got != en["gone.withdrawn"] {
		t.Fatalf("download after withdrawal: %q", got)
	}
	// Expired.
	_, u = g.notify(harriet, mailbox.LinkRequest{Lifetime: time.Hour})
	keep(u)
	g.clk.Add(61 * time.Minute)
	c.open(tab, u)
	c.shot(tab, "expired")
	if got := c.text(tab, "#message"); got != en["gone.expired"] {
		t.Fatalf("expired link: %q", got)
	}
}

// TestPickupHeadersWithCurl checks every security header and cookie attribute with curl, TLS 1.1
// refused, a cross-site post refused, and that the link's token reaches no log line.
func TestPickupHeadersWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	g := startPickupGateway(t, nil)
	_, url := g.notify(harriet, mailbox.LinkRequest{})
	jar := t.TempDir() + "/cookies"
	out := curl(t, g, "-sS", "-D", "-", "-c", jar, url)
	headers, body, _ := strings.Cut(out, "\r\n\r\n")
	for _, want := range []string{"HTTP/1.1 200", "strict-transport-security: max-age=31536000", "x-frame-options: DENY",
		"x-content-type-options: nosniff", "referrer-policy: no-referrer", "cache-control: no-store",
		"content-security-policy: default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"} {
		if !strings.Contains(strings.ToLower(headers), strings.ToLower(want)) {
			t.Errorf("headers lack %q:\n%s", want, headers)
		}
	}
	cookie := regexp.MustCompile(`(?im)^set-cookie: (.*)$`).FindStringSubmatch(headers)
	if cookie == nil {
		t.Fatalf("no cookie set:\n%s", headers)
	}
	for _, attr := range []string{"__Host-", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(cookie[1], attr) {
			t.Errorf("cookie %q lacks %s", cookie[1], attr)
		}
	}
	if strings.Contains(strings.ToLower(headers+body), "<script") {
		t.Error("a script on the sign-in page")
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("no form token")
	}
	form := "csrf=" + csrf[1] + "&mail=" + harriet + "&password=not-" + "the-password&code=000000"
	out = curl(t, g, "-sS", "-D", "-", "-o", "/dev/null", "-b", jar, "-H", "Origin: "+g.url, "--data", form, url)
	if !strings.Contains(out, "HTTP/1.1 401") || !strings.Contains(strings.ToLower(out), "cache-control: no-store") {
		t.Fatalf("refused sign-in:\n%s", out)
	}
	out = curl(t, g, "-sS", "-D", "-", "-o", "/dev/null", "-b", jar, "-H", "Sec-Fetch-Site: cross-site", "--data", form, url)
	if !strings.Contains(out, "HTTP/1.1 403") {
		t.Fatalf("cross-site post:\n%s", out)
	}
	cmd := exec.Command("curl", "-sS", "--cacert", g.caFile, "--tlsv1", "--tls-max", "1.1", "-o", "/dev/null", url)
	if err := cmd.Run(); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
	g.checkLogs(tokenOf(url), "not-the-password")
}

func curl(t *testing.T, g *pickupGateway, args ...string) string {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"--cacert", g.caFile, "--max-time", "20"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
