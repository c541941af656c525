// Routing: which route a destination domain takes, and which hosts to try for it (the smart host, or
// the domain's MX hosts by preference, or the domain itself when it has no MX records).

package relay

import (
	"context"
	"errors"
	"net"
	"sort"
	"strconv"
	"strings"

	"cafgate/mailbox"
)

// destination is where one domain's mail goes and how many connections it may have.
type destination struct {
	key   string // what the connection limit counts: a smart host route, or the domain
	limit int
	route *Route
}

func (r *Relay) destination(domain string) destination {
	rt, idx := r.route(domain)
	limit := r.opt.MaxPerDestination
	if rt.MaxConns > 0 {
		limit = rt.MaxConns
	}
	if rt.SmartHost != "" {
		return destination{key: "route:" + strconv.Itoa(idx), limit: limit, route: rt}
	}
	return destination{key: "mx:" + domain, limit: limit, route: rt}
}

// route returns the route for domain and its index (-1 for the default route).
func (r *Relay) route(domain string) (*Route, int) {
	star := -1
	for i := range r.opt.Routes {
		for _, d := range r.opt.Routes[i].Domains {
			if d == domain {
				return &r.opt.Routes[i], i
			}
			if d == "*" {
				star = i
			}
		}
	}
	if star >= 0 {
		return &r.opt.Routes[star], star
	}
	return &r.mxRoute, -1
}

// target is one host to try: the name its certificate must carry, and the address to dial.
type target struct {
	host, addr string
}

// targets returns the hosts to try for domain, best first, or the failure that stops delivery.
func (r *Relay) targets(ctx context.Context, domain string, rt *Route) ([]target, *failure) {
	if rt.SmartHost != "" {
		host, _, _ := net.SplitHostPort(rt.SmartHost)
		return []target{{host: host, addr: rt.SmartHost}}, nil
	}
	mxs, err := r.opt.Resolver.LookupMX(ctx, domain)
	if len(mxs) == 0 && err != nil {
		if !notFound(err) {
			return nil, tempf("", "4.4.3", "looking up the MX hosts of "+domain+" failed: "+dnsText(err))
		}
		return r.implicitMX(ctx, domain)
	}
	if len(mxs) == 0 {
		return r.implicitMX(ctx, domain)
	}
	if len(mxs) == 1 && strings.TrimSuffix(mxs[0].Host, ".") == "" {
		return nil, permf(mailbox.CauseUnroutable, "", "5.1.10", domain+" accepts no mail (null MX record, RFC 7505)")
	}
	r.sortMX(mxs)
	var ts []target
	for _, mx := range mxs {
		h := strings.TrimSuffix(mx.Host, ".")
		if h == "" || len(ts) == r.opt.MaxMXHosts {
			continue
		}
		ts = append(ts, target{host: h, addr: net.JoinHostPort(h, r.opt.MXPort)})
	}
	return ts, nil
}

// implicitMX is RFC 5321 section 5.1: with no MX records the domain itself is the host, if it exists.
func (r *Relay) implicitMX(ctx context.Context, domain string) ([]target, *failure) {
	if _, err := r.opt.Resolver.LookupHost(ctx, domain); err != nil {
		if notFound(err) {
			return nil, permf(mailbox.CauseUnroutable, "", "5.1.2", "the domain "+domain+" does not exist (no MX or address records)")
		}
		return nil, tempf("", "4.4.3", "looking up "+domain+" failed: "+dnsText(err))
	}
	return []target{{host: domain, addr: net.JoinHostPort(domain, r.opt.MXPort)}}, nil
}

// sortMX orders by preference, shuffling hosts of equal preference (RFC 5321 section 5.1).
func (r *Relay) sortMX(mxs []*net.MX) {
	for i := len(mxs) - 1; i > 0; i-- {
		j := int(r.opt.Rand() * float64(i+1))
		mxs[i], mxs[j] = mxs[j], mxs[i]
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
}

func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func dnsText(err error) string {
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.Err
	}
	return err.Error()
}
