package api

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/gateway/smtpd"
)

// TestUploadThroughput measures uploads per second and the 99th percentile latency for 10 KB and 1 MB
// packages at 1, 10 and 100 concurrent clients, over this API and over SMTP submission (implicit TLS,
// one session per client) of the same packages, in the same run, on the same intake and store. It runs
// only with CAFGATE_API_BENCH=1 (a few minutes); the table goes to the test log. Figures taken on a
// loaded machine are not final: the load average is printed beside them.
func TestUploadThroughput(t *testing.T) {
	if os.Getenv("CAFGATE_API_BENCH") != "1" {
		t.Skip("set CAFGATE_API_BENCH=1 to run the upload benchmark")
	}
	e := newEnv(t, func(l *Limits) { l.RatePerMinute, l.RateBurst, l.MaxBufferedBytes = 1<<30, 1<<20, 1<<30 })
	smtpAddr := e.startSMTP(t)
	var rows []string
	for _, size := range []int{10 << 10, 1 << 20} {
		content := e.benchPackage(size)
		for _, conc := range []int{1, 10, 100} {
			n := max(conc*4, 40)
			if size > 100<<10 {
				n = max(conc*2, 20)
			}
			api := e.measure(t, conc, n, e.apiSender(content))
			mail := e.measure(t, conc, n, e.smtpSender(t, smtpAddr, content))
			rows = append(rows, fmt.Sprintf("| %7s | %3d | %8.1f | %8.1f | %5.2f | %8s | %8s |", sizeName(size), conc,
				api.rate, mail.rate, api.rate/mail.rate, api.p99.Round(time.Millisecond), mail.p99.Round(time.Millisecond)))
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("uploads per second and p99, API vs SMTP submission (GOMAXPROCS %d, load average %s)\n"+
		"| package | clients | API /s | SMTP /s | API/SMTP | API p99 | SMTP p99 |\n|---|---|---|---|---|---|---|\n%s",
		runtime.GOMAXPROCS(0), strings.TrimSpace(string(load)), strings.Join(rows, "\n"))
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MB", n>>20)
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// benchPackage is a package for the first sample episode from priya to gwen with one document of
// about size bytes.
func (e *env) benchPackage(size int) []byte {
	docs := []testDoc{{"caf-form.pdf", "application/pdf", bytes.Repeat([]byte("CAF form line of text.\n"), size/23+1)[:size], []string{"childs-details"}}}
	return rawPackage(priya, []string{gwen}, manifestFor(e.episode(0), priya, docs), docs)
}

type measured struct {
	rate float64
	p99  time.Duration
}

// measure sends n packages with conc workers, each worker using send (one connection per worker).
func (e *env) measure(t *testing.T, conc, n int, newSender func() func() error) measured {
	t.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var failed error
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := newSender()
			for range jobs {
				t0 := time.Now()
				err := send()
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if err != nil && failed == nil {
					failed = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		t.Fatalf("an upload failed: %v", failed)
	}
	slices.Sort(lat)
	return measured{rate: float64(n) / elapsed.Seconds(), p99: lat[min(len(lat)-1, len(lat)*99/100)]}
}

// apiSender returns a worker's sender: its own HTTP client (keep-alive connection).
func (e *env) apiSender(content []byte) func() func() error {
	return func() func() error {
		c := e.client(nil)
		return func() error {
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/packages", bytes.NewReader(content))
			req.Header.Set("Authorization", "Bearer "+e.keys[health])
			req.Header.Set(OnBehalfOfHeader, priya)
			req.Header.Set("Content-Type", "message/rfc822")
			res, err := c.Do(req)
			if err != nil {
				return err
			}
			var b bytes.Buffer
			b.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				return fmt.Errorf("status %d: %s", res.StatusCode, truncate(b.Bytes(), 300))
			}
			return nil
		}
	}
}

// startSMTP serves SMTP submission over implicit TLS on the same intake.
func (e *env) startSMTP(t *testing.T) string {
	srv := smtpd.New(e.in, smtpd.Options{Hostname: "localhost", MaxSessionsPerIP: 1000, MaxSessions: 1000,
		TLSConfig: &tls.Config{Certificates: e.srv.TLS.Certificates}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeSubmissions(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// smtpSender returns a worker's sender: one signed-in session, a transaction per package.
func (e *env) smtpSender(t *testing.T, addr string, content []byte) func() func() error {
	return func() func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1"})
		if err != nil {
			return func() error { return err }
		}
		c, err := smtp.NewClient(conn, "127.0.0.1")
		if err == nil {
			err = c.Auth(smtp.PlainAuth("", priya, e.passwd[priya], "127.0.0.1"))
		}
		if err != nil {
			return func() error { return err }
		}
		t.Cleanup(func() { c.Close() })
		return func() error {
			if err := c.Mail(priya); err != nil {
				return err
			}
			if err := c.Rcpt(gwen); err != nil {
				return err
			}
			w, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := w.Write(content); err != nil {
				return err
			}
			return w.Close()
		}
	}
}
