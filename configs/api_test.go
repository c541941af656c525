package configs

import (
	"strings"
	"testing"
)

func TestAPIValidation(t *testing.T) {
	c := Default()
	if ps := c.validateAPI("f.toml"); len(ps) != 0 {
		t.Fatalf("defaults: %v", ps)
	}
	if c.API.Listen != "" || int64(c.API.MaxBufferedBytes) < MinAPIBufferedBytes(int64(c.API.MaxUploadSize)) {
		t.Fatalf("defaults: %+v", c.API)
	}
	for _, tc := range []struct {
		set     func(*Config)
		setting string
	}{
		{func(c *Config) { c.API.Listen = "8443" }, "api.listen"},
		{func(c *Config) { c.API.Listen = c.HTTPS.Listen }, "api.listen"},
		{func(c *Config) { c.API.MaxBufferedBytes = c.API.MaxUploadSize * 4 }, "api.max_buffered_bytes"},
		{func(c *Config) { c.API.RateLimit = 0 }, "api.rate_limit"},
	} {
		c := Default()
		tc.set(c)
		ps := c.validateAPI("f.toml")
		if len(ps) != 1 || ps[0].Setting != tc.setting || !strings.Contains(ps[0].String(), tc.setting) {
			t.Errorf("want one problem with %s, got %v", tc.setting, ps)
		}
	}
	c.API.Listen = "127.0.0.1:8443"
	if ps := c.validateAPI("f.toml"); len(ps) != 0 {
		t.Errorf("a separate API listener: %v", ps)
	}
}
