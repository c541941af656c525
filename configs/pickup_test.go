package configs

import (
	"strings"
	"testing"
)

func TestPickupDefaultsAreValid(t *testing.T) {
	c := Default()
	if ps := c.validatePickup("f.toml"); len(ps) != 0 {
		t.Fatalf("defaults: %v", ps)
	}
	if c.Pickup.LinkLifetime.D().Hours() != 168 || c.Pickup.MaxDownloads != 10 || c.Pickup.ReasonRequired {
		t.Fatalf("defaults: %+v", c.Pickup)
	}
	c.Hostname, c.HTTPS.Listen = "gw.example.org", ":8443"
	if got := c.PickupBaseURL(); got != "https://gw.example.org:8443/pickup/" {
		t.Fatalf("base URL %q", got)
	}
	c.HTTPS.Listen = "0.0.0.0:443"
	if got := c.PickupBaseURL(); got != "https://gw.example.org/pickup/" {
		t.Fatalf("base URL %q", got)
	}
	if c.PickupNotifyFrom() != "no-reply@gw.example.org" || c.PickupReportTo() != "postmaster@gw.example.org" {
		t.Fatal("address defaults")
	}
}

func TestPickupValidation(t *testing.T) {
	c := Default()
	c.Pickup.BaseURL = "http://gw.example.org/pickup/"
	c.Pickup.NotifyFrom = "Gateway <no-reply@gw.example.org>"
	c.Pickup.ReportTo = "not an address"
	c.Pickup.MaxDownloads = 0
	c.Pickup.SessionIdle = 2 * c.Pickup.SessionMax
	ps := c.validatePickup("f.toml")
	var got []string
	for _, p := range ps {
		got = append(got, p.Setting)
	}
	want := "pickup.base_url pickup.max_downloads pickup.notify_from pickup.report_to pickup.session_idle"
	joined := strings.Join(got, " ")
	for _, w := range strings.Fields(want) {
		if !strings.Contains(joined, w) {
			t.Errorf("no problem reported for %s (got %s)", w, joined)
		}
	}
	if len(ps) != 5 {
		t.Fatalf("problems: %v", ps)
	}
	c = Default()
	c.Pickup.BaseURL = "https://gw.example.org/pickup"
	if ps := c.validatePickup("f.toml"); len(ps) != 1 {
		t.Fatalf("base URL without the trailing /pickup/: %v", ps)
	}
}
