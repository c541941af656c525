package imapd

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"cafgate/mailbox"
)

// Options are the IMAP front door's settings. Every zero limit is replaced by the safe default named
// beside it.
type Options struct {
	// TLSConfig is required: implicit TLS on the IMAPS listener, STARTTLS on the other.
	TLSConfig *tls.Config
	// Notifier wakes idling sessions when a user's folders change. Give the one delivery notifies, so
	// a new delivery reaches an idling client at once; default: a private one (sessions of this server
	// still wake each other, deliveries are seen at the next IdlePoll).
	Notifier *mailbox.Notifier
	// Hosted reports whether a practitioner's mail is hosted here; others cannot sign in. Default: all.
	Hosted func(mail string) bool
	// Standing, when set, is asked again every StandingInterval during a session whether the signed-in
	// practitioner may still use the gateway (directory look-up and Standing); an error ends the session.
	Standing         func(ctx context.Context, mail string) error
	StandingInterval time.Duration // default 5m
	// Events, when set, records each sign-in and refused sign-in in the ledger (no password, ever).
	Events Recorder

	MaxConnections        int           // simultaneous connections over both listeners; default 1000
	MaxConnectionsPerIP   int           // per client address (IPv6: per /64); default 100 (an office behind one NAT address)
	MaxConnectionsPerUser int           // signed-in sessions per practitioner; default 10
	MaxMessageBytes       int64         // largest APPEND; default 25 MiB
	IdlePoll              time.Duration // how often an idling session looks at the store unprompted; default 30s
	OpTimeout             time.Duration // time allowed for one store operation; default 30s

	// Sign-in failures per client address within AuthFailureWindow: after AuthFailuresBeforeDelay each
	// answer is delayed (AuthDelay doubling up to AuthMaxDelay); after AuthFailuresBeforeBlock sign-in
	// is refused until the window has moved on.
	AuthFailuresBeforeDelay int           // default 3
	AuthFailuresBeforeBlock int           // default 10
	AuthFailureWindow       time.Duration // default 15m
	AuthDelay               time.Duration // default 250ms
	AuthMaxDelay            time.Duration // default 4s

	Log *slog.Logger     // default: discard
	Now func() time.Time // default: time.Now

	// insecureAuth lets tests sign in without TLS (the fuzz harness over net.Pipe).
	insecureAuth bool
}

// The defaults.
const (
	DefaultStandingInterval        = 5 * time.Minute
	DefaultMaxConnections          = 1000
	DefaultMaxConnectionsPerIP     = 100
	DefaultMaxConnectionsPerUser   = 10
	DefaultMaxMessageBytes         = 25 << 20
	DefaultIdlePoll                = 30 * time.Second
	DefaultOpTimeout               = 30 * time.Second
	DefaultAuthFailuresBeforeDelay = 3
	DefaultAuthFailuresBeforeBlock = 10
	DefaultAuthFailureWindow       = 15 * time.Minute
	DefaultAuthDelay               = 250 * time.Millisecond
	DefaultAuthMaxDelay            = 4 * time.Second
)

// maxTrackedAddresses bounds the memory of the sign-in failure counter.
const maxTrackedAddresses = 100_000

func (o Options) withDefaults() Options {
	setInt(&o.MaxConnections, DefaultMaxConnections)
	setInt(&o.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	setInt(&o.MaxConnectionsPerUser, DefaultMaxConnectionsPerUser)
	if o.MaxMessageBytes <= 0 || o.MaxMessageBytes > 1<<31 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	setDur(&o.StandingInterval, DefaultStandingInterval)
	setDur(&o.IdlePoll, DefaultIdlePoll)
	setDur(&o.OpTimeout, DefaultOpTimeout)
	setInt(&o.AuthFailuresBeforeDelay, DefaultAuthFailuresBeforeDelay)
	setInt(&o.AuthFailuresBeforeBlock, DefaultAuthFailuresBeforeBlock)
	setDur(&o.AuthFailureWindow, DefaultAuthFailureWindow)
	setDur(&o.AuthDelay, DefaultAuthDelay)
	setDur(&o.AuthMaxDelay, DefaultAuthMaxDelay)
	if o.Notifier == nil {
		o.Notifier = mailbox.NewNotifier()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone()
		if o.TLSConfig.MinVersion < tls.VersionTLS12 {
			o.TLSConfig.MinVersion = tls.VersionTLS12
		}
	}
	return o
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
