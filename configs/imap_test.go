package configs

import (
	"strings"
	"testing"
)

func TestIMAPDefaultsAndHosted(t *testing.T) {
	c := Default()
	if c.IMAP.Enabled() || c.IMAP.IMAPS != ":993" || c.IMAP.IMAP != ":143" || c.IMAP.MaxMessageSize != 25<<20 {
		t.Fatalf("defaults: %+v", c.IMAP)
	}
	c.IMAP.HostedDomains = []string{"Council.Example"}
	if !c.IMAP.Enabled() || !c.IMAP.Hosted("bob@council.EXAMPLE") || c.IMAP.Hosted("bob@elsewhere.example") || c.IMAP.Hosted("nobody") {
		t.Fatal("Hosted")
	}
}

func TestValidateIMAP(t *testing.T) {
	c := Default()
	c.Directories = []DirectoryConfig{{Name: "d", Domains: []string{"council.example"}}}
	c.IMAP.HostedDomains = []string{" Council.Example "}
	c.resolveIMAP()
	if ps := c.validateIMAP("f.toml"); len(ps) != 0 {
		t.Fatalf("valid: %v", ps)
	}
	for _, tc := range []struct {
		change  func(*Config)
		setting string
	}{
		{func(c *Config) { c.IMAP.HostedDomains = []string{"other.example"} }, "imap.hosted_domains"},
		{func(c *Config) { c.IMAP.HostedDomains = []string{"council.example", "council.example"} }, "imap.hosted_domains"},
		{func(c *Config) { c.IMAP.HostedDomains = []string{"a@b"} }, "imap.hosted_domains"},
		{func(c *Config) { c.IMAP.IMAPS, c.IMAP.IMAP = "", "" }, "imap"},
		{func(c *Config) { c.IMAP.IMAPS = "993" }, "imap.imaps"},
		{func(c *Config) { c.IMAP.MaxConnectionsPerUser = 0 }, "imap.max_connections_per_user"},
		{func(c *Config) { c.IMAP.StandingCheck = 0 }, "imap.standing_check"},
	} {
		cc := *c
		cc.IMAP.HostedDomains = append([]string(nil), c.IMAP.HostedDomains...)
		tc.change(&cc)
		ps := cc.validateIMAP("f.toml")
		if len(ps) == 0 || ps[0].Setting != tc.setting || !strings.Contains(ps.Error(), "f.toml") {
			t.Errorf("%s: %v", tc.setting, ps)
		}
	}
}
