// Options from the configuration file: [relay] and its [[relay.route]] tables, with trust anchors and
// smart host passwords read from their files.

package relay

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"cafgate/configs"
)

// FromConfig returns the Options cfg describes (hostname, [relay]), reading each route's ca_file and
// password_file. Resolver, Dial, Now and Rand stay at their defaults.
func FromConfig(cfg *configs.Config, log *slog.Logger) (Options, error) {
	rc := cfg.Relay
	helo := rc.HeloName
	if helo == "" {
		helo = cfg.Hostname
	}
	opt := Options{
		Hostname: helo, MaxConnections: rc.MaxConnections, MaxPerDestination: rc.MaxPerDestination,
		MessagesPerConnection: rc.MessagesPerConnection, Lifetime: rc.Lifetime.D(), DelayWarning: rc.DelayWarning.D(),
		RetryMin: rc.RetryMin.D(), RetryMax: rc.RetryMax.D(), ConnectTimeout: rc.ConnectTimeout.D(),
		CommandTimeout: rc.CommandTimeout.D(), DataTimeout: rc.DataTimeout.D(), Lease: rc.Lease.D(),
		PollInterval: rc.PollInterval.D(), Log: log,
	}
	if rc.DelayWarning == 0 {
		opt.DelayWarning = -1 // 0s in the file means no warning; 0 in Options means the default
	}
	for i, r := range rc.Routes {
		rt, err := routeFromConfig(r)
		if err != nil {
			return Options{}, fmt.Errorf("relay.route[%d]: %w", i, err)
		}
		opt.Routes = append(opt.Routes, rt)
	}
	return opt, nil
}

func routeFromConfig(r configs.RelayRoute) (Route, error) {
	rt := Route{Domains: append([]string(nil), r.Domains...), SmartHost: r.SmartHost, ImplicitTLS: r.Security == "tls",
		TLS: TLSMode(r.TLS), Username: r.Username, MaxConns: r.MaxConnections,
		NoChunking: r.Chunking == "off"}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return rt, err
		}
		rt.RootCAs = x509.NewCertPool()
		if !rt.RootCAs.AppendCertsFromPEM(pem) {
			return rt, fmt.Errorf("ca_file %s holds no PEM certificate", r.CAFile)
		}
	}
	if r.PasswordFile != "" {
		st, err := os.Stat(r.PasswordFile)
		if err != nil {
			return rt, err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return rt, fmt.Errorf("password_file %s is readable by group or others; make it 0600", r.PasswordFile)
		}
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return rt, err
		}
		rt.Password = strings.TrimRight(string(b), "\r\n")
		if rt.Password == "" {
			return rt, fmt.Errorf("password_file %s is empty", r.PasswordFile)
		}
	}
	return rt, nil
}
