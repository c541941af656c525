package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cafgate/configs"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndUnknown(t *testing.T) {
	code, out, _ := runCLI("help")
	if code != 0 || !strings.Contains(out, "config check") || !strings.Contains(out, "dev") {
		t.Fatalf("help: %d %q", code, out)
	}
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "cafgate ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestConfigDocMatchesReference(t *testing.T) {
	code, out, _ := runCLI("config", "doc")
	if code != 0 || out != configs.Reference() {
		t.Fatal("config doc output differs from configs.Reference")
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cafgate.toml")
	if err := os.WriteFile(path, []byte("hostname = \"gw.example\"\n[smtp]\nmax_recipients = -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("config", "check", "--config", path)
	if code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	for _, want := range []string{path, "smtp.max_recipients", "tls.cert_file", "directory"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("config check output lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, errOut := runCLI("config", "check", "--config", filepath.Join(dir, "missing.toml")); code != 1 || !strings.Contains(errOut, "cannot read") {
		t.Fatalf("missing file: %d %q", code, errOut)
	}
}
