// Tests of the content key file: creation, reuse, and refusal of bad modes and lengths.

package mailbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKeyCreatesPrivateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "content.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != keySize || len(k1) != keySize {
		t.Fatalf("mode %v size %d len %d", st.Mode().Perm(), st.Size(), len(k1))
	}
	if bytes.Equal(k1, make([]byte, keySize)) {
		t.Fatal("key is all zeros")
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load differs: %v", err)
	}
	other, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
	if err != nil || bytes.Equal(k1, other) {
		t.Fatalf("two new keys are equal: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestLoadOrCreateKeyRefusesReadableFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		path := filepath.Join(t.TempDir(), "content.key")
		if err := os.WriteFile(path, bytes.Repeat([]byte{1}, keySize), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKey(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %v: err = %v, want a refusal naming chmod 600", mode, err)
		}
	}
}

func TestLoadOrCreateKeyRefusesWrongLength(t *testing.T) {
	for _, n := range []int{0, 16, keySize + 1} {
		path := filepath.Join(t.TempDir(), "content.key")
		if err := os.WriteFile(path, bytes.Repeat([]byte{1}, n), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKey(path); err == nil {
			t.Errorf("%d-byte key accepted", n)
		}
	}
}

func TestLoadOrCreateKeyRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("directory accepted as key file")
	}
}
