package configs

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// PickupConfig is the one-time-link notification and the HTTPS pickup page for recipients without a
// valid S/MIME certificate.
type PickupConfig struct {
	BaseURL             string   `toml:"base_url" default:"" doc:"https URL the links in notifications start with, ending in /pickup/ (the page is served on the HTTPS listener under /pickup/). Empty means https://HOSTNAME/pickup/, with the port of https.listen when it is not 443."`
	NotifyFrom          string   `toml:"notify_from" default:"" doc:"Address notifications come from (header From and envelope sender). Empty means no-reply@HOSTNAME."`
	ReportTo            string   `toml:"report_to" default:"" doc:"Mail address that notifications and the pickup page name for reporting a notification received by mistake or asking for help. Empty means postmaster@HOSTNAME."`
	LinkLifetime        Duration `toml:"link_lifetime" default:"168h" doc:"How long a one-time link works after its notification is sent."`
	MaxDownloads        int      `toml:"max_downloads" default:"10" doc:"Most downloads (one document, or all as a zip) one link allows."`
	ReasonRequired      bool     `toml:"reason_required" default:"false" doc:"Ask the recipient for a reason for access before the package is shown; it is recorded with every view and download in the ledger."`
	SessionIdle         Duration `toml:"session_idle" default:"10m" doc:"A pickup session ends after this long without a request."`
	SessionMax          Duration `toml:"session_max" default:"1h" doc:"A pickup session ends this long after sign-in, however active."`
	EnrolmentLifetime   Duration `toml:"enrolment_lifetime" default:"72h" doc:"How long an enrolment code from cafgate totp enrol works."`
	FailuresPerAddress  int      `toml:"failures_per_address" default:"20" doc:"Refused sign-in attempts from one client address (IPv4, or IPv6 /64) within failure_window after which it is refused until the window passes."`
	FailureWindow       Duration `toml:"failure_window" default:"15m" doc:"How long a refused attempt counts against its client address."`
	FailuresPerAccount  int      `toml:"failures_per_account" default:"10" doc:"Refused sign-ins in a row after which a mail address is locked out of the pickup page until an administrator runs cafgate totp unlock."`
	FailuresPerLink     int      `toml:"failures_per_link" default:"10" doc:"Refused sign-ins through one link after which the link is locked until an administrator runs cafgate link unlock."`
	ExpiryCheckInterval Duration `toml:"expiry_check_interval" default:"5m" doc:"How often links past their lifetime are marked expired (with their ledger event). A link is refused at its expiry whether or not it has been marked."`
}

// validatePickup checks [pickup]. The lead calls it from Config.validate.
func (c *Config) validatePickup(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: "pickup." + setting, Message: fmt.Sprintf(format, args...)})
	}
	pc := c.Pickup
	if pc.BaseURL != "" {
		u, err := url.Parse(pc.BaseURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/pickup/") {
			bad("base_url", "must be an https URL ending in /pickup/, such as https://gateway.example.org/pickup/, not %q", pc.BaseURL)
		}
	}
	for _, a := range []struct{ setting, v string }{{"notify_from", pc.NotifyFrom}, {"report_to", pc.ReportTo}} {
		if m, err := mail.ParseAddress(a.v); a.v != "" && (err != nil || m.Name != "" || m.Address != a.v) {
			bad(a.setting, "must be a plain mail address such as someone@example.org, not %q", a.v)
		}
	}
	positive := map[string]int64{
		"link_lifetime": int64(pc.LinkLifetime), "max_downloads": int64(pc.MaxDownloads),
		"session_idle": int64(pc.SessionIdle), "session_max": int64(pc.SessionMax),
		"enrolment_lifetime": int64(pc.EnrolmentLifetime), "failures_per_address": int64(pc.FailuresPerAddress),
		"failure_window": int64(pc.FailureWindow), "failures_per_account": int64(pc.FailuresPerAccount),
		"failures_per_link": int64(pc.FailuresPerLink), "expiry_check_interval": int64(pc.ExpiryCheckInterval),
	}
	for _, k := range sortedKeys(positive) {
		if positive[k] <= 0 {
			bad(k, "must be greater than zero")
		}
	}
	if pc.SessionMax > 0 && pc.SessionIdle > pc.SessionMax {
		bad("session_idle", "must not be longer than session_max")
	}
	return ps
}

// PickupBaseURL is pickup.base_url, or the default built from hostname and the HTTPS port.
func (c *Config) PickupBaseURL() string {
	if c.Pickup.BaseURL != "" {
		return c.Pickup.BaseURL
	}
	host := c.Hostname
	if _, port, err := splitPort(c.HTTPS.Listen); err == nil && port != "" && port != "443" {
		host += ":" + port
	}
	return "https://" + host + "/pickup/"
}

// PickupNotifyFrom is pickup.notify_from, or no-reply@HOSTNAME.
func (c *Config) PickupNotifyFrom() string {
	if c.Pickup.NotifyFrom != "" {
		return c.Pickup.NotifyFrom
	}
	return "no-reply@" + c.Hostname
}

// PickupReportTo is pickup.report_to, or postmaster@HOSTNAME.
func (c *Config) PickupReportTo() string {
	if c.Pickup.ReportTo != "" {
		return c.Pickup.ReportTo
	}
	return "postmaster@" + c.Hostname
}

// splitPort splits a listen address; an address without a port gives an empty port.
func splitPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, "", nil
	}
	return addr[:i], addr[i+1:], nil
}
