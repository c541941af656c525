package configs

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// RelayConfig is outbound delivery: how queued messages reach other mail servers, how long the
// gateway keeps trying, and when the sender is told.
type RelayConfig struct {
	MaxConnections        int          `toml:"max_connections" default:"20" doc:"Most outbound SMTP connections open at once, over all destinations."`
	MaxPerDestination     int          `toml:"max_connections_per_destination" default:"4" doc:"Most outbound SMTP connections open at once to one destination domain (a route may set its own)."`
	MessagesPerConnection int          `toml:"messages_per_connection" default:"20" doc:"Most messages sent over one connection before it is closed and the queue looked at again."`
	Lifetime              Duration     `toml:"lifetime" default:"120h" doc:"How long a message is retried before it is given up and the sender gets a failure report (DSN)."`
	DelayWarning          Duration     `toml:"delay_warning" default:"4h" doc:"After how long without delivery the sender gets one \"delayed\" report (DSN) while retries go on. 0s sends none."`
	RetryMin              Duration     `toml:"retry_min" default:"5m" doc:"Wait before the first retry after a temporary failure; each later wait doubles (with random jitter) up to retry_max."`
	RetryMax              Duration     `toml:"retry_max" default:"1h" doc:"Longest wait between two attempts."`
	ConnectTimeout        Duration     `toml:"connect_timeout" default:"30s" doc:"Time allowed to open a TCP connection and receive the greeting."`
	CommandTimeout        Duration     `toml:"command_timeout" default:"5m" doc:"Time allowed for each SMTP command's answer (RFC 5321 suggests 5m)."`
	DataTimeout           Duration     `toml:"data_timeout" default:"10m" doc:"Time allowed for the answer after a message's data has been sent (RFC 5321 suggests 10m)."`
	Lease                 Duration     `toml:"lease" default:"30m" doc:"How long a delivery attempt may hold a message before another worker may take it over (after a crash). Must exceed one attempt's timeouts (connect_timeout + 3 x command_timeout + data_timeout) by a tenth."`
	PollInterval          Duration     `toml:"poll_interval" default:"5s" doc:"How often the queue is looked at for messages that became due (including changes made with cafgate queue)."`
	HeloName              string       `toml:"helo_name" default:"" doc:"Name sent in EHLO. Empty means hostname."`
	Routes                []RelayRoute `toml:"route" doc:"Routes by destination domain, one [[relay.route]] table each. A domain no route names is delivered to its MX hosts on port 25 with STARTTLS and certificate verification required."`
}

// RelayRoute is how mail for some destination domains is delivered.
type RelayRoute struct {
	Domains        []string `toml:"domains" default:"" doc:"Recipient domains this route is for (lower case); \"*\" matches every domain no other route names. Required."`
	SmartHost      string   `toml:"smart_host" default:"" doc:"host:port of a smart host that takes these domains' mail. Empty looks up the domains' MX records and delivers on port 25."`
	Security       string   `toml:"security" default:"starttls" doc:"starttls (the server must offer STARTTLS) or tls (implicit TLS from the first byte, usually port 465; smart hosts only)."`
	TLS            string   `toml:"tls" default:"verify" doc:"verify: the server's certificate must be valid for its host name (system roots, or ca_file). dane and mta-sts are not finished yet. none: plain text, no TLS at all; logged as a warning on every connection and never allowed with a password."`
	CAFile         string   `toml:"ca_file" default:"" doc:"PEM trust anchors for this route's servers, replacing the system roots (a private smart host)."`
	Username       string   `toml:"username" default:"" doc:"SMTP AUTH PLAIN user name for the smart host; empty sends no AUTH."`
	PasswordFile   string   `toml:"password_file" default:"" doc:"File holding the smart host password (one line); must not be readable by group or others."`
	MaxConnections int      `toml:"max_connections" default:"0" doc:"Most connections at once for this route's domains; 0 takes relay.max_connections_per_destination."`
	Chunking       string   `toml:"chunking" default:"auto" doc:"auto: when the server offers CHUNKING (RFC 3030) send each message as one BDAT chunk, and with PIPELINING several transactions in one pipelined group; otherwise DATA. off: always DATA, one message at a time, for a server whose CHUNKING is broken."`
}

// resolveRelay fills the routes' defaults (array tables get none from the struct tags) and makes their
// file paths absolute against dir. The lead calls it from Config.resolve.
func (c *Config) resolveRelay(dir string) {
	for i := range c.Relay.Routes {
		r := &c.Relay.Routes[i]
		if r.Security == "" {
			r.Security = "starttls"
		}
		if r.TLS == "" {
			r.TLS = "verify"
		}
		if r.Chunking == "" {
			r.Chunking = "auto"
		}
		for _, p := range []*string{&r.CAFile, &r.PasswordFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		for j, d := range r.Domains {
			r.Domains[j] = strings.ToLower(strings.TrimSpace(d))
		}
	}
}

// validateRelay checks [relay] and its routes. The lead calls it from Config.validate.
func (c *Config) validateRelay(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: setting, Message: fmt.Sprintf(format, args...)})
	}
	rc := c.Relay
	positive := map[string]int64{
		"relay.max_connections": int64(rc.MaxConnections), "relay.max_connections_per_destination": int64(rc.MaxPerDestination),
		"relay.messages_per_connection": int64(rc.MessagesPerConnection), "relay.lifetime": int64(rc.Lifetime),
		"relay.retry_min": int64(rc.RetryMin), "relay.retry_max": int64(rc.RetryMax),
		"relay.connect_timeout": int64(rc.ConnectTimeout), "relay.command_timeout": int64(rc.CommandTimeout),
		"relay.data_timeout": int64(rc.DataTimeout), "relay.lease": int64(rc.Lease), "relay.poll_interval": int64(rc.PollInterval),
	}
	for _, k := range sortedKeys(positive) {
		if positive[k] <= 0 {
			bad(k, "must be greater than zero")
		}
	}
	if rc.RetryMax < rc.RetryMin {
		bad("relay.retry_max", "must not be below retry_min")
	}
	if rc.DelayWarning >= rc.Lifetime && rc.DelayWarning > 0 {
		bad("relay.delay_warning", "must be shorter than lifetime (or 0s for no warning)")
	}
	if attempt := rc.ConnectTimeout + 3*rc.CommandTimeout + rc.DataTimeout; rc.Lease > 0 && rc.Lease*9/10 <= attempt {
		bad("relay.lease", "must exceed one attempt's timeouts (connect_timeout + 3 x command_timeout + data_timeout = %s) by a tenth", attempt.D())
	}
	if strings.ContainsAny(rc.HeloName, " \t\r\n/@") {
		bad("relay.helo_name", "must be a host name, not %q", rc.HeloName)
	}
	owner := map[string]int{}
	for i, r := range rc.Routes {
		ps = append(ps, validateRoute(file, fmt.Sprintf("relay.route[%d]", i), r, i, owner)...)
	}
	return ps
}

// validateRoute checks one [[relay.route]]; owner maps each domain to the route that claimed it.
func validateRoute(file, at string, r RelayRoute, i int, owner map[string]int) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: at + "." + setting, Message: fmt.Sprintf(format, args...)})
	}
	if len(r.Domains) == 0 {
		bad("domains", "list at least one destination domain, or \"*\"")
	}
	for _, d := range r.Domains {
		if d == "" || strings.ContainsAny(d, "@ /:") || (strings.Contains(d, "*") && d != "*") {
			bad("domains", "%q is not a domain (or \"*\")", d)
		} else if o, ok := owner[d]; ok {
			bad("domains", "%q is already routed by relay.route[%d]", d, o)
		}
		owner[d] = i
	}
	if r.SmartHost != "" {
		if h, p, err := net.SplitHostPort(r.SmartHost); err != nil || h == "" || p == "" {
			bad("smart_host", "%q is not host:port, such as smtp.example.org:587", r.SmartHost)
		}
	}
	switch r.Security {
	case "starttls":
	case "tls":
		if r.SmartHost == "" {
			bad("security", "tls (implicit TLS) needs a smart_host: MX delivery on port 25 uses STARTTLS")
		}
		if r.TLS == "none" {
			bad("security", "tls contradicts tls = \"none\"")
		}
	default:
		bad("security", "must be starttls or tls, not %q", r.Security)
	}
	switch r.TLS {
	case "verify", "none":
	case "dane", "mta-sts":
		bad("tls", "%s is not finished yet; use verify (or none, plain text)", r.TLS)
	default:
		bad("tls", "must be verify or none, not %q", r.TLS)
	}
	if (r.Username == "") != (r.PasswordFile == "") {
		bad("username", "username and password_file must both be set or both be empty")
	}
	if r.Username != "" && r.SmartHost == "" {
		bad("username", "AUTH is for a smart host; this route delivers to MX hosts")
	}
	if r.Username != "" && r.TLS == "none" {
		bad("tls", "none would send the smart host password in plain text")
	}
	badFn := badFunc(bad)
	checkFile(badFn, "ca_file", r.CAFile, false)
	checkKey(badFn, "password_file", r.PasswordFile, false)
	if r.MaxConnections < 0 {
		bad("max_connections", "must not be negative")
	}
	if r.Chunking != "auto" && r.Chunking != "off" {
		bad("chunking", "must be auto or off, not %q", r.Chunking)
	}
	return ps
}
