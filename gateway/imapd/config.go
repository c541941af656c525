package imapd

import (
	"context"
	"time"

	"cafgate/configs"
	"cafgate/directory"
)

// FromConfig returns the Options [imap] sets: the limits and which practitioners are hosted. The
// caller adds TLSConfig, Notifier (the one delivery notifies), Standing, Events and Log.
func FromConfig(cfg *configs.Config) Options {
	ic := cfg.IMAP
	return Options{
		Hosted:                ic.Hosted,
		StandingInterval:      ic.StandingCheck.D(),
		MaxConnections:        ic.MaxConnections,
		MaxConnectionsPerIP:   ic.MaxConnectionsPerIP,
		MaxConnectionsPerUser: ic.MaxConnectionsPerUser,
		MaxMessageBytes:       int64(ic.MaxMessageSize),
	}
}

// DirectoryStanding is an Options.Standing that looks the practitioner up again in dir: an entry gone
// from the directory, disabled or with lapsed vetting ends their sessions; a directory that cannot be
// reached (directory.ErrUnavailable) does not.
func DirectoryStanding(dir directory.Directory, now func() time.Time) func(ctx context.Context, mail string) error {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context, mail string) error {
		p, err := dir.Lookup(ctx, mail)
		if err != nil {
			return err
		}
		return p.Standing(now())
	}
}
