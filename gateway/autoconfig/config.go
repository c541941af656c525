package autoconfig

import (
	"net"
	"net/http"

	"cafgate/configs"
)

// FromConfig returns the settings the gateway's configuration implies: its host name, the hosted
// domains and the listen addresses of IMAP and SMTP submission. A listener that is disabled (empty
// address) or has no fixed port (":0") is not offered.
func FromConfig(cfg *configs.Config) Settings {
	fixed := func(addr string) string {
		if _, p, err := net.SplitHostPort(addr); err != nil || p == "0" {
			return ""
		}
		return addr
	}
	return Settings{Hostname: cfg.Hostname, Domains: cfg.IMAP.HostedDomains,
		IMAPS: fixed(cfg.IMAP.IMAPS), IMAP: fixed(cfg.IMAP.IMAP),
		Submissions: fixed(cfg.SMTP.Submissions), Submission: fixed(cfg.SMTP.Submission)}
}

// Mount adds the handler for s under every path of Paths to mounts (the HTTPS listener's handlers by
// pattern). It adds nothing when no domain is hosted, and returns New's error when s cannot be offered.
func Mount(mounts map[string]http.Handler, s Settings) error {
	if len(s.Domains) == 0 {
		return nil
	}
	h, err := New(s)
	if err != nil {
		return err
	}
	for _, p := range Paths {
		mounts[p] = h
	}
	return nil
}
