package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleDev = `{"dir":"/d","ca_cert":"/d/ca/ca.pem","hostname":"localhost",
 "listen":{"submission":"127.0.0.1:4587","submissions":"127.0.0.1:4465","https":"127.0.0.1:4443","imap":"","admin_socket":"/d/admin.sock"},
 "accounts":[
  {"mail":"gone@x.test","password":"p0","roles":["practitioner"],"status":"disabled"},
  {"mail":"sh@x.test","password":"p1","roles":["practitioner"],"status":"active","sensitive_service":true},
  {"mail":"aud@x.test","password":"p2","roles":["auditor"],"status":"active"},
  {"mail":"ann@x.test","password":"p:3","roles":["practitioner","lead_professional"],"status":"active"},
  {"mail":"lapsed@x.test","password":"p4","roles":["practitioner"],"status":"lapsed"},
  {"mail":"ben@x.test","password":"p5","roles":["practitioner"],"status":"active"}]}`

// sampleDevEpisodes is sampleDev with a sample episode whose team leaves out ann@x.test.
var sampleDevEpisodes = strings.Replace(sampleDev, `"accounts":[`,
	`"episodes":[{"reference":"CAF-2026-000009","lead":"ben@x.test","team":["sh@x.test","zed@x.test"]},{"reference":"CAF-2026-000010"}],
 "accounts":[
  {"mail":"zed@x.test","password":"p6","roles":["practitioner"],"status":"active"},`, 1)

func writeDev(t *testing.T) string { return writeDevText(t, sampleDev) }

func writeDevText(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "dev.json")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDevFillsEverything(t *testing.T) {
	t.Setenv("LOAD_AUTH", "other@x.test:pw") // for another server: must not override dev.json
	c, err := parseFlags([]string{"-dev", writeDev(t), "-size", "1MiB"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:4587" || !c.startTLS || c.caFile != "/d/ca/ca.pem" || c.serverName != "localhost" {
		t.Fatalf("transport: %+v", c)
	}
	if c.from != "ann@x.test" || c.user != "ann@x.test" || c.pass != "p:3" || len(c.to) != 1 || c.to[0] != "ben@x.test" {
		t.Fatalf("accounts: %+v", c)
	}
}

func TestDevKeepsExplicitFlags(t *testing.T) {
	c, err := parseFlags([]string{"-dev", writeDev(t), "-addr", "127.0.0.1:9", "-from", "ben@x.test", "-to", "a@y,b@y"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:9" || c.from != "ben@x.test" || c.pass != "p5" || len(c.to) != 2 {
		t.Fatalf("%+v", c)
	}
	if _, err := parseFlags([]string{"-dev", writeDev(t), "-from", "nobody@x.test"}, io.Discard); err == nil {
		t.Fatal("unknown sender accepted")
	}
}

func TestDevPicksEpisodeTeam(t *testing.T) {
	c, err := parseFlags([]string{"-dev", writeDevText(t, sampleDevEpisodes)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// ann is the first usable account but not on the team; sh is on it but in a sensitive service
	if c.episode != "CAF-2026-000009" || c.from != "zed@x.test" || c.pass != "p6" || c.to[0] != "ben@x.test" {
		t.Fatalf("%+v", c)
	}
	c, err = parseFlags([]string{"-dev", writeDevText(t, sampleDevEpisodes), "-episode", "CAF-2026-000010"}, io.Discard)
	if err != nil || c.episode != "CAF-2026-000010" {
		t.Fatalf("explicit -episode: %+v %v", c, err)
	}
}

func TestDevPicksCertifiedRecipients(t *testing.T) {
	text := strings.Replace(sampleDev, `"status":"active"}]}`, `"status":"active","cert":"/d/ben.pem"},
  {"mail":"cat@x.test","password":"p7","roles":["practitioner"],"status":"active"},
  {"mail":"dan@x.test","password":"p8","roles":["practitioner"],"status":"active","cert":"/d/dan.pem"}]}`, 1)
	c, err := parseFlags([]string{"-dev", writeDevText(t, text), "-rcpts", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.to, ",") != "ben@x.test,dan@x.test" {
		t.Fatalf("recipients %v, want the two with certificates", c.to)
	}
	if _, err := parseFlags([]string{"-dev", writeDevText(t, text), "-rcpts", "3"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "only 2") {
		t.Fatalf("3 certified recipients of 2: %v", err)
	}
}
