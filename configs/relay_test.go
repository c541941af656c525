package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRelayDefaultsAreValid(t *testing.T) {
	c := Default()
	if ps := c.validateRelay("f.toml"); len(ps) != 0 {
		t.Fatalf("defaults refused: %v", ps)
	}
	if c.Relay.Lifetime.D().Hours() != 120 || c.Relay.DelayWarning.D().Hours() != 4 || c.Relay.MaxPerDestination != 4 {
		t.Fatalf("defaults = %+v", c.Relay)
	}
}

func TestRelayRoutesResolvedAndChecked(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "smart.pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Relay.Routes = []RelayRoute{{Domains: []string{" Partner.Example "}, SmartHost: "smtp.partner.example:587",
		Username: "gw", PasswordFile: "smart.pw"}}
	c.resolveRelay(dir)
	r := c.Relay.Routes[0]
	if r.Security != "starttls" || r.TLS != "verify" || r.Chunking != "auto" || r.PasswordFile != pw || r.Domains[0] != "partner.example" {
		t.Fatalf("resolved route = %+v", r)
	}
	if ps := c.validateRelay("f.toml"); len(ps) != 0 {
		t.Fatalf("a good route refused: %v", ps)
	}
}

func TestRelayProblemsNameTheSetting(t *testing.T) {
	cases := []struct {
		edit    func(c *Config)
		setting string
		words   string
	}{
		{func(c *Config) { c.Relay.RetryMax = c.Relay.RetryMin / 2 }, "relay.retry_max", "retry_min"},
		{func(c *Config) { c.Relay.DelayWarning = c.Relay.Lifetime }, "relay.delay_warning", "shorter than lifetime"},
		{func(c *Config) { c.Relay.Lease = c.Relay.DataTimeout }, "relay.lease", "exceed"},
		{func(c *Config) { c.Relay.MaxConnections = 0 }, "relay.max_connections", "greater than zero"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, TLS: "dane"}} }, "relay.route[0].tls", "not finished"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, TLS: "mta-sts"}} }, "relay.route[0].tls", "not finished"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, TLS: "maybe"}} }, "relay.route[0].tls", "verify or none"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, Security: "tls"}} }, "relay.route[0].security", "smart_host"},
		{func(c *Config) {
			c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, SmartHost: "h:25", TLS: "none", Username: "u", PasswordFile: "/nonexistent"}}
		}, "relay.route[0].tls", "plain text"},
		{func(c *Config) {
			c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}}, {Domains: []string{"a.example"}}}
		}, "relay.route[1].domains", "already routed"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{}} }, "relay.route[0].domains", "at least one"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"*.example"}}} }, "relay.route[0].domains", "not a domain"},
		{func(c *Config) {
			c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, SmartHost: "nohostport"}}
		}, "relay.route[0].smart_host", "host:port"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, Username: "u"}} }, "relay.route[0].username", "both"},
		{func(c *Config) { c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, Chunking: "on"}} }, "relay.route[0].chunking", "auto or off"},
	}
	for i, tc := range cases {
		c := Default()
		tc.edit(c)
		c.resolveRelay(t.TempDir())
		ps := c.validateRelay("f.toml")
		found := false
		for _, p := range ps {
			if p.Setting == tc.setting && strings.Contains(p.Message, tc.words) {
				found = true
			}
		}
		if !found {
			t.Errorf("case %d: want %s %q, got %v", i, tc.setting, tc.words, ps)
		}
	}
}

func TestRelayPasswordFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Relay.Routes = []RelayRoute{{Domains: []string{"a.example"}, SmartHost: "h:587", Username: "u", PasswordFile: "pw"}}
	c.resolveRelay(dir)
	ps := c.validateRelay("f.toml")
	if len(ps) != 1 || ps[0].Setting != "relay.route[0].password_file" || !strings.Contains(ps[0].Message, "0600") {
		t.Fatalf("problems = %v", ps)
	}
}
