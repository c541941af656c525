// The content key file: 32 random bytes, mode 0600, created atomically and durably, refused when it has
// the wrong length or can be read by group or others.

package mailbox

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateKey returns the 32-byte content key stored at path, creating the file (mode 0600, written
// to a temporary file, fsynced, linked into place, directory fsynced) if it does not exist. It refuses a
// file that is not a regular file, is group- or world-accessible, or does not hold exactly 32 bytes.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createKey(path); err != nil {
		return nil, err
	}
	return readKey(path)
}

// readKey reads and checks an existing key file.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("mailbox: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("mailbox: key file %s has mode %04o, which lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	key, err := io.ReadAll(io.LimitReader(f, keySize+1))
	if err != nil {
		return nil, err
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("mailbox: key file %s holds %d bytes, want exactly %d", path, len(key), keySize)
	}
	return key, nil
}

// createKey writes a fresh random key to path. It links rather than renames so a key another process
// created meanwhile is never overwritten (that would make its messages unreadable).
func createKey(path string) error {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, key); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Remove(tmp.Name()); err != nil {
		return err
	}
	return syncDir(dir)
}

func writeSynced(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
