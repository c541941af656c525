package ldap

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// Options configure one LDAP directory.
type Options struct {
	Name    string   // the directory's name, in logs and on every Practitioner
	Domains []string // mail domains it answers for

	// URL is ldaps://host[:636] (TLS from the start) or ldap://host[:389] (StartTLS before anything
	// else, unless InsecurePlain).
	URL           string
	InsecurePlain bool        // ldap:// without StartTLS: passwords in clear; logged loudly
	TLS           *tls.Config // RootCAs (nil: the system's) and ServerName (empty: URL's host)

	BindDN       string // the service account that searches
	BindPassword string
	BaseDN       string // searched with subtree scope

	ConnectTimeout time.Duration // connect + TLS + service bind
	Timeout        time.Duration // one search or bind
	// PoolSize is the most service connections kept open and reused; 0 dials one for every search
	// and closes it afterwards (slower; for comparison).
	PoolSize int

	Map      Map
	Agency   string   // when set, every entry's agency, whatever the entry says
	Agencies []string // otherwise the agencies an entry's Map.Agency value may name

	Log *slog.Logger // nil: discard
}

// endpoint is where and how to connect, worked out once from Options.
type endpoint struct {
	addr     string // host:port
	implicit bool   // ldaps://
	plain    bool   // ldap:// without StartTLS
	tls      *tls.Config
}

func (o *Options) endpoint() (endpoint, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return endpoint{}, fmt.Errorf("url %q is not ldaps://host[:port] or ldap://host[:port]", o.URL)
	}
	ep := endpoint{}
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "ldaps":
		ep.implicit, port = true, "636"
		if o.InsecurePlain {
			return endpoint{}, fmt.Errorf("insecure plain LDAP makes no sense with ldaps://")
		}
	case "ldap":
		ep.plain, port = o.InsecurePlain, "389"
	default:
		return endpoint{}, fmt.Errorf("url %q: the scheme must be ldaps or ldap", o.URL)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	ep.addr = net.JoinHostPort(u.Hostname(), port)
	ep.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLS != nil {
		ep.tls = o.TLS.Clone()
		if ep.tls.MinVersion < tls.VersionTLS12 {
			ep.tls.MinVersion = tls.VersionTLS12
		}
	}
	ep.tls.InsecureSkipVerify = false
	if ep.tls.ServerName == "" {
		ep.tls.ServerName = u.Hostname()
	}
	return ep, nil
}

func (o *Options) check() error {
	if o.Name == "" {
		return fmt.Errorf("no name")
	}
	if len(o.Domains) == 0 {
		return fmt.Errorf("no mail domains")
	}
	if _, err := goldap.ParseDN(o.BaseDN); err != nil || o.BaseDN == "" {
		return fmt.Errorf("base DN %q is not a DN", o.BaseDN)
	}
	if o.BindDN != "" {
		if _, err := goldap.ParseDN(o.BindDN); err != nil {
			return fmt.Errorf("bind DN %q is not a DN", o.BindDN)
		}
		if o.BindPassword == "" {
			return fmt.Errorf("bind DN set without a password")
		}
	}
	if o.ConnectTimeout <= 0 || o.Timeout <= 0 {
		return fmt.Errorf("connect and operation timeouts must be greater than zero")
	}
	if o.PoolSize < 0 {
		return fmt.Errorf("negative pool size")
	}
	return nil
}
