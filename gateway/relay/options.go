// Package relay delivers the outbound queue: workers claim due entries per destination domain, send
// them with go-smtp's client to the domain's smart host or MX hosts over verified TLS, and record each
// outcome (delivered, retried with backoff, or failed) in the store with its ledger event; delay
// warnings and failure reports (DSNs) to the sender are queued in the same transaction.
package relay

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"cafgate/mailbox"
)

// Queue is what the relay needs of the store of record (*mailbox.Store).
type Queue interface {
	DueDomains(ctx context.Context, now time.Time) ([]mailbox.DomainDue, error)
	NextDue(ctx context.Context) (time.Time, bool, error)
	Claim(ctx context.Context, opt mailbox.ClaimOptions) ([]*mailbox.Claimed, error)
	Unclaim(ctx context.Context, l mailbox.Lease, at time.Time) error
	RecordOutcomes(ctx context.Context, results []mailbox.QueueResult) ([]error, error)
}

var _ Queue = (*mailbox.Store)(nil)

// Resolver looks up MX hosts (*net.Resolver).
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// TLSMode is how a route protects its connections.
type TLSMode string

// TLS modes. Only Verify and None are implemented; configuration refuses the others.
const (
	Verify TLSMode = "verify" // TLS required, certificate valid for the host name
	None   TLSMode = "none"   // plain text only, never TLS: an explicit, loudly logged choice
)

// Route is how mail for some destination domains is delivered.
type Route struct {
	Domains     []string // lower case; "*" matches every domain no other route names
	SmartHost   string   // host:port; empty delivers to the domain's MX hosts on port 25
	ImplicitTLS bool     // TLS from the first byte (smart hosts only); otherwise STARTTLS
	TLS         TLSMode  // default Verify
	RootCAs     *x509.CertPool
	Username    string // AUTH PLAIN, smart hosts only, never without TLS
	Password    string
	MaxConns    int  // 0 takes Options.MaxPerDestination
	NoChunking  bool // always DATA, even to a server offering CHUNKING (BDAT)
}

// Options configures a Relay. Zero values take the defaults noted.
type Options struct {
	Hostname              string  // EHLO name and the DSNs' reporting MTA (required)
	Routes                []Route // first match by exact domain, then "*", else MX with Verify
	MaxConnections        int     // default 20
	MaxPerDestination     int     // default 4
	MessagesPerConnection int     // default 20
	Lifetime              time.Duration
	DelayWarning          time.Duration // default 4h; negative sends none
	RetryMin, RetryMax    time.Duration // default 5m, 1h
	ConnectTimeout        time.Duration // dial and greeting; default 30s
	CommandTimeout        time.Duration // default 5m
	DataTimeout           time.Duration // answer after the data; default 10m
	Lease                 time.Duration // default mailbox.DefaultLease
	PollInterval          time.Duration // default 5s
	ShutdownGrace         time.Duration // how long an attempt under way may finish after Run's ctx ends; default 10s
	MXPort                string        // default "25"; tests point it elsewhere
	MaxMXHosts            int           // most MX hosts tried per attempt; default 5
	RootCAs               *x509.CertPool
	Resolver              Resolver                                                          // default net.DefaultResolver
	Dial                  func(ctx context.Context, network, addr string) (net.Conn, error) // default net.Dialer
	Now                   func() time.Time                                                  // default time.Now
	Rand                  func() float64                                                    // in [0, 1), for jitter; default math/rand/v2
	Log                   *slog.Logger
	// Build builds and seals the copy of an entry queued by recipe (mailbox.Claimed.Recipe) for an
	// attempt (the delivery pipeline's Build). An error wrapping mailbox.ErrCorrupt fails the entry;
	// any other defers it. nil: such entries fail as corrupt.
	Build func(ctx context.Context, c *mailbox.Claimed) ([]byte, error)

	noPipelining bool      // tests: send MAIL, RCPT and DATA one at a time even to a server offering PIPELINING
	noChunking   bool      // tests: send DATA even to a server offering CHUNKING
	noGrouping   bool      // tests: groups of one transaction: one write each
	onGroup      func(int) // tests: told the size of each pipelined group sent
}

const defaultLifetime = 5 * 24 * time.Hour

func (o Options) withDefaults() (Options, error) {
	if o.Hostname == "" || strings.ContainsAny(o.Hostname, " \t\r\n/@") {
		return o, fmt.Errorf("relay: Hostname %q is not a host name", o.Hostname)
	}
	setInt(&o.MaxConnections, 20)
	setInt(&o.MaxPerDestination, 4)
	setInt(&o.MessagesPerConnection, 20)
	setInt(&o.MaxMXHosts, 5)
	setDur(&o.Lifetime, defaultLifetime)
	setDur(&o.RetryMin, 5*time.Minute)
	setDur(&o.RetryMax, time.Hour)
	setDur(&o.ConnectTimeout, 30*time.Second)
	setDur(&o.CommandTimeout, 5*time.Minute)
	setDur(&o.DataTimeout, 10*time.Minute)
	setDur(&o.Lease, mailbox.DefaultLease)
	setDur(&o.PollInterval, 5*time.Second)
	setDur(&o.ShutdownGrace, 10*time.Second)
	if o.DelayWarning == 0 {
		o.DelayWarning = 4 * time.Hour
	}
	if o.MXPort == "" {
		o.MXPort = "25"
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RetryMax < o.RetryMin {
		return o, errors.New("relay: RetryMax is below RetryMin")
	}
	if o.Lease-leaseMargin(o.Lease) <= o.attemptBudget() {
		return o, fmt.Errorf("relay: Lease %s does not exceed one attempt's timeouts (%s) by a tenth", o.Lease, o.attemptBudget())
	}
	return o, o.checkRoutes()
}

// attemptBudget is the longest one message's attempt can take on an open connection, plus connecting.
func (o Options) attemptBudget() time.Duration {
	return o.ConnectTimeout + 3*o.CommandTimeout + o.DataTimeout
}

// checkRoutes copies the routes (so the caller's slices are not changed), defaults and checks them.
func (o *Options) checkRoutes() error {
	o.Routes = append([]Route(nil), o.Routes...)
	seen := map[string]bool{}
	for i := range o.Routes {
		r := &o.Routes[i]
		r.Domains = append([]string(nil), r.Domains...)
		if r.TLS == "" {
			r.TLS = Verify
		}
		switch {
		case r.TLS != Verify && r.TLS != None:
			return fmt.Errorf("relay: route %d: TLS mode %q is not implemented", i, r.TLS)
		case r.ImplicitTLS && (r.SmartHost == "" || r.TLS == None):
			return fmt.Errorf("relay: route %d: implicit TLS needs a smart host and TLS", i)
		case r.Username != "" && (r.SmartHost == "" || r.TLS == None):
			return fmt.Errorf("relay: route %d: AUTH needs a smart host and TLS", i)
		}
		if r.SmartHost != "" {
			if _, _, err := net.SplitHostPort(r.SmartHost); err != nil {
				return fmt.Errorf("relay: route %d: smart host %q: %v", i, r.SmartHost, err)
			}
		}
		for j, d := range r.Domains {
			d = strings.ToLower(d)
			r.Domains[j] = d
			if seen[d] {
				return fmt.Errorf("relay: domain %q is in two routes", d)
			}
			seen[d] = true
		}
	}
	return nil
}

func setInt(p *int, def int) {
	if *p <= 0 {
		*p = def
	}
}

func setDur(p *time.Duration, def time.Duration) {
	if *p <= 0 {
		*p = def
	}
}

// groupMax is the most transactions in one pipelined group (one with noGrouping).
func (o Options) groupMax() int {
	if o.noGrouping {
		return 1
	}
	return groupMax
}
