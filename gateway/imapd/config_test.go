package imapd

import (
	"context"
	"errors"
	"testing"
	"time"

	"cafgate/configs"
	"cafgate/directory"
)

func TestFromConfigAndStanding(t *testing.T) {
	cfg := configs.Default()
	cfg.IMAP.HostedDomains = []string{"council.example"}
	o := FromConfig(cfg)
	if !o.Hosted("bob@council.example") || o.Hosted("x@elsewhere.example") || o.MaxMessageBytes != 25<<20 ||
		o.StandingInterval != 5*time.Minute || o.MaxConnectionsPerUser != 10 {
		t.Fatalf("%+v", o)
	}
	d := newFakeDir()
	st := DirectoryStanding(d, nil)
	ctx := context.Background()
	for mail, want := range map[string]error{"bob@council.example": nil, "lapsed@council.example": directory.ErrVettingLapsed,
		"off@council.example": directory.ErrDisabled, "gone@council.example": directory.ErrNotFound} {
		if err := st(ctx, mail); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", mail, err, want)
		}
	}
	d.set(func() { d.down = true })
	if err := st(ctx, "bob@council.example"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("down: %v", err)
	}
}
