package smtpd

import (
	"crypto/tls"
	"log/slog"
	"os"
	"time"
)

// Options are the SMTP front door's settings. Every zero limit is replaced by the safe default named
// beside it: go-smtp's own defaults are unlimited, ours never are.
type Options struct {
	Hostname         string        // in the greeting; default: the host name, else "cafgate"
	MaxMessageBytes  int64         // largest message accepted (552 5.3.4 above it); default 25 MiB
	MaxRecipients    int           // most recipients in one message (452 4.5.3 above it); default 100
	MaxLineLength    int           // longest command or data line in bytes; default 2000
	ReadTimeout      time.Duration // idle time allowed waiting for a command or more data; default 5m
	WriteTimeout     time.Duration // time allowed for a reply to reach the client; default 1m
	MaxSessions      int           // simultaneous sessions over both ports (421 4.7.0 above it); default 500
	MaxSessionsPerIP int           // simultaneous sessions per client address (IPv6: per /64); default 20

	// AuthFailuresBeforeDelay: after this many failed sign-ins from one client address within
	// AuthFailureWindow, each further AUTH answer is delayed by AuthDelay, doubling per failure up to
	// AuthMaxDelay. Default 3.
	AuthFailuresBeforeDelay int
	// AuthFailuresBeforeBlock: after this many failed sign-ins from one client address within
	// AuthFailureWindow, AUTH is answered 421 4.7.0 and the connection closed until the window has
	// moved past enough of them. Default 10.
	AuthFailuresBeforeBlock int
	AuthFailureWindow       time.Duration // how long a failed sign-in counts; default 15m
	AuthDelay               time.Duration // first delay; default 250ms
	AuthMaxDelay            time.Duration // longest delay; default 4s

	// MaxBufferedBytes bounds the message data held in memory by all sessions together while they are
	// received and committed; a message that would exceed it is answered 451 4.3.0. Default 512 MiB.
	MaxBufferedBytes int64

	// MaxDrainBytes bounds what is read and discarded of a message after it has been refused (too big,
	// or no memory to hold it): past it the refusal is sent at once and the connection closed, rather
	// than reading the rest of the DATA first. Default 1 MiB.
	MaxDrainBytes int64

	TLSConfig *tls.Config      // required: STARTTLS on submission, implicit TLS on submissions
	Log       *slog.Logger     // default: discard
	Now       func() time.Time // default: time.Now; drives the sign-in failure window
}

// The defaults.
const (
	DefaultMaxMessageBytes         = 25 << 20
	DefaultMaxRecipients           = 100
	DefaultMaxLineLength           = 2000
	DefaultReadTimeout             = 5 * time.Minute
	DefaultWriteTimeout            = time.Minute
	DefaultMaxSessions             = 500
	DefaultMaxSessionsPerIP        = 20
	DefaultAuthFailuresBeforeDelay = 3
	DefaultAuthFailuresBeforeBlock = 10
	DefaultAuthFailureWindow       = 15 * time.Minute
	DefaultAuthDelay               = 250 * time.Millisecond
	DefaultAuthMaxDelay            = 4 * time.Second
	DefaultMaxBufferedBytes        = 512 << 20
	DefaultMaxDrainBytes           = 1 << 20
)

// maxTrackedAddresses bounds the memory the sign-in failure counter may use.
const maxTrackedAddresses = 100_000

// withDefaults returns o with every zero or negative setting replaced by its default.
func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "cafgate"
		}
	}
	setInt64(&o.MaxMessageBytes, DefaultMaxMessageBytes)
	setInt(&o.MaxRecipients, DefaultMaxRecipients)
	setInt(&o.MaxLineLength, DefaultMaxLineLength)
	setDur(&o.ReadTimeout, DefaultReadTimeout)
	setDur(&o.WriteTimeout, DefaultWriteTimeout)
	setInt(&o.MaxSessions, DefaultMaxSessions)
	setInt(&o.MaxSessionsPerIP, DefaultMaxSessionsPerIP)
	setInt(&o.AuthFailuresBeforeDelay, DefaultAuthFailuresBeforeDelay)
	setInt(&o.AuthFailuresBeforeBlock, DefaultAuthFailuresBeforeBlock)
	setDur(&o.AuthFailureWindow, DefaultAuthFailureWindow)
	setDur(&o.AuthDelay, DefaultAuthDelay)
	setDur(&o.AuthMaxDelay, DefaultAuthMaxDelay)
	setInt64(&o.MaxBufferedBytes, DefaultMaxBufferedBytes)
	setInt64(&o.MaxDrainBytes, DefaultMaxDrainBytes)
	if o.MaxBufferedBytes < o.MaxMessageBytes {
		o.MaxBufferedBytes = o.MaxMessageBytes
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

func setInt64(p *int64, def int64) {
	if *p <= 0 {
		*p = def
	}
}

func setDur(p *time.Duration, def time.Duration) {
	if *p <= 0 {
		*p = def
	}
}
