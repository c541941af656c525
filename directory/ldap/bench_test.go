package ldap

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"cafgate/directory"
)

// Benchmarks against a local slapd over ldaps:// (TLS 1.3, the service account bound): look-ups and
// sign-ins with and without the pool and the look-up cache, and ldapsearch doing the same look-ups
// against the same slapd in the same run. Each reports lookups/s (or signins/s) and p99-µs.
//
//	go test -run '^$' -bench . -benchtime 2000x ./directory/ldap/

var benchMails = []string{"harriet.example@school.cafgate.test", "priya.placeholder@health.cafgate.test",
	"sam.fictitious@health.cafgate.test", "gwen.testcase@socialcare.cafgate.test", "declan.madeup@socialcare.cafgate.test",
	"una.imaginary@socialcare.cafgate.test", "rita.notreal@police.cafgate.test", "tom.pretend@police.cafgate.test"}

// latencies collects per-operation times and reports rate and p99.
type latencies struct {
	mu    sync.Mutex
	d     []time.Duration
	start time.Time
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, unit string) {
	el := time.Since(l.start)
	b.ReportMetric(float64(len(l.d))/el.Seconds(), unit+"/s")
	if len(l.d) > 0 {
		slices.Sort(l.d)
		b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds()), "p99-µs")
	}
}

func BenchmarkLookup(b *testing.B) {
	e := startCafgateSlapd(b)
	run := func(name string, pool int, cache bool, parallel bool) {
		b.Run(name, func(b *testing.B) {
			d := e.open(b, func(o *Options) { o.PoolSize = pool })
			var dir directory.Directory = d
			if cache {
				dir = directory.NewCache(d, 10*time.Second, 1000, nil)
			}
			l := &latencies{}
			one := func(i int) {
				t0 := time.Now()
				if _, err := dir.Lookup(bg(), benchMails[i%len(benchMails)]); err != nil {
					b.Error(err)
				}
				l.add(time.Since(t0))
			}
			b.ResetTimer()
			l.start = time.Now()
			if parallel {
				var mu sync.Mutex
				n := 0
				b.SetParallelism(4) // 4 x GOMAXPROCS clients
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						mu.Lock()
						n++
						i := n
						mu.Unlock()
						one(i)
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					one(i)
				}
			}
			b.StopTimer()
			l.report(b, "lookups")
			b.ReportMetric(float64(d.Dials()), "dials")
		})
	}
	// The library alone on one connection, without this package's pool, map or checks: the floor.
	b.Run("go-ldap-alone", func(b *testing.B) {
		d := e.open(b, nil)
		c, err := dial(bg(), d.ep, time.Second, serviceDN, servicePW)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		l := &latencies{start: time.Now()}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req := &goldap.SearchRequest{BaseDN: base, Scope: goldap.ScopeWholeSubtree, SizeLimit: 2,
				Filter: d.filter(benchMails[i%len(benchMails)]), Attributes: d.attrs}
			t0 := time.Now()
			if _, err := c.Search(req); err != nil {
				b.Fatal(err)
			}
			l.add(time.Since(t0))
		}
		b.StopTimer()
		l.report(b, "lookups")
	})
	run("pool", 4, false, false)
	run("nopool", 0, false, false)
	run("pool+cache", 4, true, false)
	run("pool/parallel", 4, false, true)
	run("nopool/parallel", 0, false, true)
}

func BenchmarkAuthenticate(b *testing.B) {
	e := startCafgateSlapd(b)
	for _, c := range []struct {
		name string
		pool int
	}{{"pool", 4}, {"nopool", 0}} {
		b.Run(c.name, func(b *testing.B) {
			d := e.open(b, func(o *Options) { o.PoolSize = c.pool })
			l := &latencies{start: time.Now()}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mail := benchMails[i%len(benchMails)]
				t0 := time.Now()
				if _, err := d.Authenticate(bg(), mail, e.passwords[mail]); err != nil {
					b.Error(err)
				}
				l.add(time.Since(t0))
			}
			b.StopTimer()
			l.report(b, "signins")
		})
	}
}

// BenchmarkLdapsearch drives the same slapd with OpenLDAP's own client: one process doing every
// search on one connection (-f, like the pool), and one process per search (like no pool, plus a
// process start).
func BenchmarkLdapsearch(b *testing.B) {
	e := startCafgateSlapd(b)
	pw := filepath.Join(b.TempDir(), "pw")
	os.WriteFile(pw, []byte(servicePW), 0o600)
	args := []string{"-x", "-H", e.srv.LDAPSURL, "-D", serviceDN, "-y", pw, "-b", base, "-z", "2", "-LLL"}
	attrs := CafgateMap().attributes()
	env := append(os.Environ(), "LDAPTLS_CACERT="+filepath.Join(e.dir, "ca", "ca.pem"), "LDAPTLS_REQCERT=demand")
	b.Run("one-connection", func(b *testing.B) {
		list := filepath.Join(b.TempDir(), "mails")
		var lines strings.Builder
		for i := 0; i < b.N; i++ {
			lines.WriteString(benchMails[i%len(benchMails)] + "\n")
		}
		os.WriteFile(list, []byte(lines.String()), 0o600)
		cmd := exec.Command("ldapsearch", append(append(args, "-f", list, "(&(objectClass=cafPractitioner)(mail=%s))"), attrs...)...)
		cmd.Env = env
		b.ResetTimer()
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ldapsearch: %v\n%s", err, out)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
	})
	b.Run("process-per-lookup", func(b *testing.B) {
		l := &latencies{start: time.Now()}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("ldapsearch", append(append(args, "(&(objectClass=cafPractitioner)(mail="+benchMails[i%len(benchMails)]+"))"), attrs...)...)
			cmd.Env = env
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("ldapsearch: %v\n%s", err, out)
			}
			l.add(time.Since(t0))
		}
		b.StopTimer()
		l.report(b, "lookups")
	})
}
