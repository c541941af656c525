package configs

import (
	"fmt"
	"strings"
)

// IMAPConfig is the IMAP front door to the hosted mailboxes.
type IMAPConfig struct {
	HostedDomains         []string `toml:"hosted_domains" default:"" doc:"Mail domains whose practitioners have their mailbox on the gateway: their copies are delivered into it instead of being relayed, and they read them over IMAP with their directory password. Each must be a domain of a [[directory]]. Empty: no hosted mailboxes, and no IMAP listener is opened."`
	IMAPS                 string   `toml:"imaps" default:":993" doc:"Listen address for IMAP over implicit TLS. Empty disables it. Opened only when hosted_domains is not empty."`
	IMAP                  string   `toml:"imap" default:":143" doc:"Listen address for IMAP with STARTTLS; sign-in is refused before TLS (LOGINDISABLED). Empty disables it. Opened only when hosted_domains is not empty."`
	MaxConnections        int      `toml:"max_connections" default:"1000" doc:"Most simultaneous IMAP connections over both listeners; more are answered BYE and closed."`
	MaxConnectionsPerIP   int      `toml:"max_connections_per_ip" default:"100" doc:"Most simultaneous IMAP connections from one client address (IPv6: one /64). Mail clients keep several connections open per account, and an office may reach the gateway through one address."`
	MaxConnectionsPerUser int      `toml:"max_connections_per_user" default:"10" doc:"Most simultaneous signed-in IMAP sessions of one practitioner (a mail client opens several)."`
	MaxMessageSize        Size     `toml:"max_message_size" default:"25MiB" doc:"Largest message a mail client may store with APPEND (copies in Sent or Drafts)."`
	StandingCheck         Duration `toml:"standing_check" default:"5m" doc:"How often an open IMAP session asks the directory again whether the practitioner may still use the gateway; the sessions of a disabled or lapsed practitioner end."`
}

// Enabled reports whether any domain is hosted, so the IMAP listeners are to be opened.
func (c IMAPConfig) Enabled() bool { return len(c.HostedDomains) > 0 }

// Hosted reports whether mail's domain is hosted (case-insensitively).
func (c IMAPConfig) Hosted(mail string) bool {
	at := strings.LastIndexByte(mail, '@')
	if at < 0 {
		return false
	}
	dom := strings.ToLower(mail[at+1:])
	for _, d := range c.HostedDomains {
		if strings.EqualFold(d, dom) {
			return true
		}
	}
	return false
}

// resolveIMAP lower-cases the hosted domains. The lead calls it from Config.resolve.
func (c *Config) resolveIMAP() {
	for i, d := range c.IMAP.HostedDomains {
		c.IMAP.HostedDomains[i] = strings.ToLower(strings.TrimSpace(d))
	}
}

// validateIMAP checks [imap]: every hosted domain is a directory's (sign-in goes through it), the
// listen addresses are addresses and at least one is set when a domain is hosted, limits are positive.
// The lead calls it from Config.validate.
func (c *Config) validateIMAP(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: setting, Message: fmt.Sprintf(format, args...)})
	}
	ic := c.IMAP
	checkAddr(bad, "imap.imaps", ic.IMAPS)
	checkAddr(bad, "imap.imap", ic.IMAP)
	if ic.Enabled() && ic.IMAPS == "" && ic.IMAP == "" {
		bad("imap", "hosted_domains is set but imaps and imap are both empty: nobody could read the hosted mailboxes")
	}
	dirDomains := map[string]bool{}
	for _, d := range c.Directories {
		for _, dom := range d.Domains {
			dirDomains[strings.ToLower(dom)] = true
		}
	}
	seen := map[string]bool{}
	for _, d := range ic.HostedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "" || strings.ContainsAny(d, "@ /*"):
			bad("imap.hosted_domains", "%q is not a mail domain", d)
		case seen[d]:
			bad("imap.hosted_domains", "%q is listed twice", d)
		case !dirDomains[d]:
			bad("imap.hosted_domains", "%q belongs to no [[directory]]: its practitioners could not sign in", d)
		}
		seen[d] = true
	}
	positive := map[string]int64{
		"imap.max_connections": int64(ic.MaxConnections), "imap.max_connections_per_ip": int64(ic.MaxConnectionsPerIP),
		"imap.max_connections_per_user": int64(ic.MaxConnectionsPerUser), "imap.max_message_size": int64(ic.MaxMessageSize),
		"imap.standing_check": int64(ic.StandingCheck),
	}
	for _, k := range sortedKeys(positive) {
		if positive[k] <= 0 {
			bad(k, "must be greater than zero (an unlimited setting is not allowed)")
		}
	}
	if ic.MaxMessageSize > 1<<31 {
		bad("imap.max_message_size", "must be at most 2GiB")
	}
	return ps
}
