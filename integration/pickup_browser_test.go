package integration

// A small driver for headless Chromium over the DevTools protocol (chromedp): one browser per test,
// a fresh browser context (its own cookies) per scenario, real form filling and clicking, downloads
// saved by the browser itself, and a screenshot of every page kept as a test artifact.
//
// chromedp rather than playwright-core: it is Go, so the browser tests run inside `go test` beside the
// gateway code they start in-process, with no Node.js runtime or npm packages to install; Debian's
// chromium is the only extra package.

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chrome is one headless Chromium.
type chrome struct {
	t         *testing.T
	root      context.Context
	artifacts string
	downloads string
	shots     int
}

// startChrome starts Chromium trusting only the server key of cert (its SPKI pin), or skips the test
// when there is no chromium (set CAFGATE_REQUIRE_CHROMIUM=1 to fail instead).
func startChrome(t *testing.T, cert *x509.Certificate) *chrome {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CAFGATE_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium); skipping the browser tests")
	}
	pin := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(pin[:])),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	c := &chrome{t: t, root: root, downloads: t.TempDir(), artifacts: artifactDir(t)}
	t.Logf("screenshots in %s", c.artifacts)
	return c
}

// artifactDir is where screenshots are kept: $CAFGATE_ARTIFACTS/<test>, or a directory under the
// system's temporary directory that outlives the test.
func artifactDir(t *testing.T) string {
	base := os.Getenv("CAFGATE_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "cafgate-artifacts")
	}
	dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tab opens a tab in a new browser context (no cookies) with a 320-pixel-wide viewport and downloads
// allowed into c.downloads.
func (c *chrome) tab() context.Context {
	c.t.Helper()
	ctx, cancel := chromedp.NewContext(c.root, chromedp.WithNewBrowserContext())
	c.t.Cleanup(cancel)
	c.setup(ctx)
	return ctx
}

// sibling opens another tab in the browser context of ctx (sharing its cookies).
func (c *chrome) sibling(ctx context.Context) context.Context {
	c.t.Helper()
	s, cancel := chromedp.NewContext(ctx)
	c.t.Cleanup(cancel)
	c.setup(s)
	return s
}

func (c *chrome) setup(ctx context.Context) {
	c.t.Helper()
	// The first run opens the tab and binds it to the context it is given: no time limit here.
	if err := chromedp.Do(ctx); err != nil {
		c.t.Fatal(err)
	}
	c.do(ctx, chromedp.EmulateViewport(320, 720, chromedp.EmulateMobile))
	_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		DownloadPath: c.downloads, EventsEnabled: ptr(true)})
	if err != nil {
		c.t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// networkRequests is the event of every request a page makes.
var networkRequests = network.RequestWillBeSent

// toString renders a header value of an event.
func toString(v any) string { return fmt.Sprint(v) }

// do runs steps with a time limit.
func (c *chrome) do(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		c.t.Fatalf("browser: %v (%s)", err, c.describe(ctx))
	}
}

// describe says where a tab is and what it shows, for a failure message, and keeps a screenshot.
func (c *chrome) describe(ctx context.Context) string {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(tctx, chromedp.Location())
	text, _ := chromedp.Run(tctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	if png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(c.artifacts, "failure.png"), png, 0o644)
	}
	return fmt.Sprintf("at %s showing %q", loc, text)
}

// text returns the visible text of the element sel.
func (c *chrome) text(ctx context.Context, sel string) string {
	c.t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		c.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

// location returns the tab's URL.
func (c *chrome) location(ctx context.Context) string {
	c.t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// open navigates to url and waits for the page's heading.
func (c *chrome) open(ctx context.Context, url string) {
	c.t.Helper()
	c.do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("h1")))
}

// fill types each value into the field with that id.
func (c *chrome) fill(ctx context.Context, fields ...string) {
	c.t.Helper()
	var steps []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(fields); i += 2 {
		steps = append(steps, chromedp.Clear(chromedp.ID(fields[i])), chromedp.SendKeys(chromedp.ID(fields[i]), fields[i+1]))
	}
	c.do(ctx, steps...)
}

// submit clicks the button sel and waits until the element next appears on the page that follows.
func (c *chrome) submit(ctx context.Context, sel, next string) {
	c.t.Helper()
	c.do(ctx, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(next)))
}

// shot keeps a full-page screenshot named after the step.
func (c *chrome) shot(ctx context.Context, name string) {
	c.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatal(err)
	}
	c.shots++
	path := filepath.Join(c.artifacts, fmt.Sprintf("%02d-%s.png", c.shots, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// fitsWidth reports whether the page needs no horizontal scrolling at the 320-pixel viewport.
func (c *chrome) fitsWidth(ctx context.Context) bool {
	c.t.Helper()
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth"))
	if err != nil {
		c.t.Fatal(err)
	}
	return w <= 320
}

// download clicks the button sel, waits for the browser to save the file and returns its bytes and
// the file name the server suggested.
func (c *chrome) download(ctx context.Context, sel string) ([]byte, string) {
	c.t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	begins := chromedp.BrowserEvents(tctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(tctx, browser.DownloadProgress)
	c.do(ctx, chromedp.Click(chromedp.CSS(sel)))
	var guid, name string
	for ev, err := range begins {
		if err != nil {
			c.t.Fatalf("waiting for the download of %s: %v", sel, err)
		}
		guid, name = ev.GUID, ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			c.t.Fatalf("download of %s: %v", sel, err)
		}
		if ev.GUID != guid {
			continue
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			path := ev.FilePath
			if path == "" {
				path = filepath.Join(c.downloads, guid)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				c.t.Fatal(err)
			}
			return b, name
		case browser.DownloadProgressStateCanceled:
			c.t.Fatalf("download of %s canceled", sel)
		}
	}
	c.t.Fatal(errors.New("download events ended"))
	return nil, ""
}
