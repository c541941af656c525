package pickup

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// BenchmarkPickupVersusPlain measures, in one run, full pickups (open the link, sign in with password
// and a fresh TOTP code, show the package, download a document: each a ledger write) against
// downloads of the same document from a handler with no authentication, over the same TLS test
// server and client. It reports both rates and their ratio.
//
//	go test -run XXX -bench PickupVersusPlain -benchtime 200x ./gateway/pickup
func BenchmarkPickupVersusPlain(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.IPFailures, o.AccountFailures = 1<<20, 1<<20 })
	defer e.srv.Close()
	doc := e.source.docs[0]
	plain := http.NewServeMux()
	plain.HandleFunc("POST /plain", func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		send(w, &file{name: doc.Name, ctype: doc.MediaType, body: doc.Content})
	})
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/plain" {
			plain.ServeHTTP(w, r)
			return
		}
		e.h.ServeHTTP(w, r)
	})
	e.link, e.token = e.issue(bob, 1<<30)
	br := e.browser()

	b.ResetTimer()
	start := time.Now()
	for range b.N {
		e.clk.Add(30 * time.Second) // a fresh TOTP step for every sign-in
		p := br.signIn(e.token, bob, "bob-password", e.code(bob, 0))
		if p.status != http.StatusSeeOther {
			b.Fatalf("sign-in: %d", p.status)
		}
		pg := br.get(Prefix + "package")
		if d := br.post(Prefix+"package/download", url.Values{"csrf": {pg.csrf(b)}, "doc": {"1"}}); d.status != 200 {
			b.Fatalf("download: %d", d.status)
		}
	}
	picked := time.Since(start)
	start = time.Now()
	for range b.N {
		if d := br.post("/plain", url.Values{"doc": {"1"}}); d.status != 200 {
			b.Fatalf("plain: %d", d.status)
		}
	}
	plainTime := time.Since(start)
	b.StopTimer()
	pickups := float64(b.N) / picked.Seconds()
	plains := float64(b.N) / plainTime.Seconds()
	b.ReportMetric(pickups, "pickups/s")
	b.ReportMetric(plains, "plain/s")
	b.ReportMetric(plains/pickups, "ratio")
}
