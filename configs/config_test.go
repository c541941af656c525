package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when docs/config.md differs from what the struct generates.
func TestReferenceIsCurrent(t *testing.T) {
	want := Reference()
	got, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatalf("docs/config.md: %v (generate it: go run ./cmd/cafgate config doc > docs/config.md)", err)
	}
	if string(got) != want {
		t.Fatal("docs/config.md is out of date with configs/config.go: run go run ./cmd/cafgate config doc > docs/config.md")
	}
}

// exampleTree copies example.toml into a temporary /etc/cafgate with the files it names.
func exampleTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{
		"tls/gateway.pem": 0o644, "tls/gateway.key": 0o600, "smime/gateway.pem": 0o644, "smime/gateway.key": 0o600,
		"directories/schools.ldif": 0o644, "directories/childrens-services.ldif": 0o644,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "cafgate.toml")
	if err := os.WriteFile(path, Example, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExampleIsValid(t *testing.T) {
	path := exampleTree(t)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.MaxMessageSize != 25<<20 || c.SMTP.ReadTimeout.D().Minutes() != 5 || len(c.Directories) != 2 {
		t.Fatalf("example decoded wrong: %+v", c.SMTP)
	}
	if c.Store.Database != "/var/lib/cafgate/cafgate.db" {
		t.Fatalf("database default not derived from data_dir: %q", c.Store.Database)
	}
	if c.TLS.CertFile != filepath.Join(filepath.Dir(path), "tls/gateway.pem") {
		t.Fatalf("relative path not resolved against the file: %q", c.TLS.CertFile)
	}
}

func TestBadConfigNamesFileAndSetting(t *testing.T) {
	path := exampleTree(t)
	base, _ := os.ReadFile(path)
	cases := []struct{ edit, setting, words string }{
		{"max_recipients = 100\n", "smtp.max_recipients", "greater than zero"},
		{"read_timeout = \"5m\"\n", "", "not a duration"},
		{"format = \"json\"", "log.format", "json or text"},
		{"hostname = \"cafgate.eastshire.example\"\n", "smtp.bogus", "unknown setting"},
		{"key_file = \"tls/gateway.key\"\n", "tls.key_file", "is required"},
		{"domains = [\"eastshire.example\"]\n", "directory[1].domains", "already belongs"},
	}
	repl := []string{"max_recipients = 0\n", "read_timeout = \"soon\"\n", "format = \"xml\"",
		"hostname = \"cafgate.eastshire.example\"\n[smtp.bogus]\nx = 1\n", "\n",
		"domains = [\"schools.eastshire.example\"]\n"}
	for i, tc := range cases {
		text := strings.Replace(string(base), tc.edit, repl[i], 1)
		if text == string(base) {
			t.Fatalf("case %d: edit %q not applied", i, tc.edit)
		}
		_, err := Parse(path, []byte(text))
		if err == nil {
			t.Fatalf("case %d: bad configuration accepted", i)
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, tc.setting) || !strings.Contains(msg, tc.words) {
			t.Errorf("case %d: problem %q should name %s, %q and %q", i, msg, path, tc.setting, tc.words)
		}
	}
}

func TestKeyPermissionsRefused(t *testing.T) {
	path := exampleTree(t)
	key := filepath.Join(filepath.Dir(path), "tls/gateway.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "tls.key_file") || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable key not refused: %v", err)
	}
}

func TestSizeAndDuration(t *testing.T) {
	for in, want := range map[string]int64{"25MiB": 25 << 20, "512KiB": 512 << 10, "1000": 1000, "1GiB": 1 << 30} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || int64(s) != want {
			t.Errorf("size %q = %d, %v; want %d", in, s, err, want)
		}
		out, _ := s.MarshalText()
		var back Size
		if err := back.UnmarshalText(out); err != nil || back != s {
			t.Errorf("size %q does not round-trip through %q", in, out)
		}
	}
	for _, bad := range []string{"-1", "12XB", "", "1e9"} {
		var s Size
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("size %q accepted", bad)
		}
	}
}
