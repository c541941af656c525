package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"10KiB": 10240, "1MiB": 1 << 20, "2048": 2048, "4K": 4096, "3M": 3 << 20, "1500B": 1500} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "0", "10KB", "100"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestParseAuth(t *testing.T) {
	u, p, err := parseAuth("a@x:pa:ss")
	if err != nil || u != "a@x" || p != "pa:ss" {
		t.Fatalf("got %q %q %v", u, p, err)
	}
	for _, bad := range []string{"nocolon", ":p", "u:"} {
		if _, _, err := parseAuth(bad); err == nil {
			t.Errorf("parseAuth(%q) accepted", bad)
		}
	}
}

func TestParseFlags(t *testing.T) {
	base := []string{"-addr", "127.0.0.1:25", "-from", "a@x", "-to", "b@x, c@x"}
	c, err := parseFlags(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.duration != 20*time.Second || c.conns != 1 || c.size != 10240 || len(c.to) != 2 || c.to[1] != "c@x" {
		t.Fatalf("defaults: %+v", c)
	}
	bad := map[string][]string{
		"auth without tls": append(base, "-auth", "a:b"),
		"both limits":      append(base, "-duration", "1s", "-messages", "3"),
		"no conns":         append(base, "-conns", "0"),
		"no port":          {"-addr", "localhost", "-from", "a@x", "-to", "b@x"},
		"no to":            {"-addr", "127.0.0.1:25", "-from", "a@x"},
		"sources remote":   {"-addr", "192.0.2.1:25", "-from", "a@x", "-to", "b@x", "-sources", "2"},
		"sources zero":     append(base, "-sources", "0"),
	}
	for name, args := range bad {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	c := config{addr: "127.0.0.1:465"}
	tc, err := c.tlsConfig()
	if err != nil || tc.ServerName != "127.0.0.1" || tc.InsecureSkipVerify {
		t.Fatalf("default: %+v %v", tc, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	c.caFile = bad
	if _, err := c.tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("bad CA file accepted: %v", err)
	}
}
