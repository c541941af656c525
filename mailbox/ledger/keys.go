// The ledger key: an Ed25519 signed-note key in golang.org/x/mod/sumdb/note's text format, kept in a
// private file (mode 0600) created on first start, with its public half written beside it (FILE.pub)
// for verifiers off the machine.

package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key is the loaded ledger key.
type Key struct {
	Signer note.Signer
	VKey   string // the public verifier key: NAME+HASH+BASE64
}

// Verifier returns the verifier for the key's public half.
func (k *Key) Verifier() note.Verifier {
	v, err := note.NewVerifier(k.VKey)
	if err != nil {
		panic("ledger: verifier key derived from a valid signer does not parse: " + err.Error())
	}
	return v
}

// LoadOrCreateKey loads the signer key at path, creating it (named origin, e.g.
// "cafgate.gw.example.org/ledger") if the file does not exist, and (re)writes path+".pub". An existing
// key keeps its own name whatever origin says: the origin of a log never changes. rnd may be nil for
// crypto/rand.
func LoadOrCreateKey(path, origin string, rnd io.Reader) (*Key, error) {
	k, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(path, origin, rnd); err != nil {
			return nil, err
		}
		k, err = loadKey(path)
	}
	if err != nil {
		return nil, err
	}
	pub := path + ".pub"
	if have, err := os.ReadFile(pub); err != nil || strings.TrimSpace(string(have)) != k.VKey {
		if err := os.WriteFile(pub, []byte(k.VKey+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("ledger: writing public key: %w", err)
		}
	}
	return k, nil
}

// LoadKey reads an existing key file (mode 0600 or stricter).
func LoadKey(path string) (*Key, error) { return loadKey(path) }

// CreateKey writes a new key named origin to path (mode 0600, fsynced), failing if path exists.
func CreateKey(path, origin string, rnd io.Reader) (*Key, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("ledger: %s exists: %w", path, fs.ErrExist)
	}
	if err := createKey(path, origin, rnd); err != nil {
		return nil, err
	}
	return loadKey(path)
}

// SyncDir fsyncs a directory, making a rename in it durable.
func SyncDir(dir string) error { return syncDir(dir) }

// loadKey reads and checks an existing key file.
func loadKey(path string) (*Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("ledger: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("ledger: key file %s has mode %04o, which lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKey(strings.TrimSpace(string(b)))
}

// ParseKey parses a signer key (PRIVATE+KEY+NAME+HASH+BASE64) and derives its public verifier key.
func ParseKey(skey string) (*Key, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("ledger: key does not parse: %w", err)
	}
	parts := strings.SplitN(skey, "+", 5) // PRIVATE, KEY, name, hash, base64 (which may hold '+')
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, errors.New("ledger: key is not an Ed25519 seed")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, err
	}
	return &Key{Signer: s, VKey: vkey}, nil
}

// createKey writes a new key to path without ever replacing one another process created meanwhile.
func createKey(path, origin string, rnd io.Reader) error {
	if rnd == nil {
		rnd = rand.Reader
	}
	skey, _, err := note.GenerateKey(rnd, origin)
	if err != nil {
		return fmt.Errorf("ledger: generating key named %q: %w", origin, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".ledger-key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(skey + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadVerifier returns the verifier for s, which is a verifier key (NAME+HASH+BASE64), a file holding
// one (such as the ledger key's .pub file), or the private key file itself.
func LoadVerifier(s string) (note.Verifier, error) {
	if v, err := note.NewVerifier(strings.TrimSpace(s)); err == nil {
		return v, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil, fmt.Errorf("ledger: %q is neither a verifier key nor a readable file: %w", s, err)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "PRIVATE+KEY+") {
		k, err := ParseKey(text)
		if err != nil {
			return nil, err
		}
		return k.Verifier(), nil
	}
	v, err := note.NewVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("ledger: %s does not hold a verifier key: %w", s, err)
	}
	return v, nil
}

// LoadKeys returns the public keys (NAME+HASH+BASE64) in s: a verifier key, a file holding one or more
// (one a line; blank lines and lines starting with # ignored), or a private key file.
func LoadKeys(s string) ([]string, error) {
	if _, err := note.NewVerifier(strings.TrimSpace(s)); err == nil {
		return []string{strings.TrimSpace(s)}, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil, fmt.Errorf("ledger: %q is neither a verifier key nor a readable file: %w", s, err)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "PRIVATE+KEY+") {
		k, err := ParseKey(text)
		if err != nil {
			return nil, err
		}
		return []string{k.VKey}, nil
	}
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := note.NewVerifier(line); err != nil {
			return nil, fmt.Errorf("ledger: %s: %q is not a verifier key: %w", s, line, err)
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("ledger: %s holds no verifier key", s)
	}
	return keys, nil
}

// VerifierKeyPEM returns the Ed25519 public key of a verifier key as a PEM SubjectPublicKeyInfo, for
// checking checkpoint signatures with openssl.
func VerifierKeyPEM(vkey string) ([]byte, error) {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3) // name, hash, base64 (which may hold '+')
	if len(parts) != 3 {
		return nil, errors.New("ledger: verifier key is not NAME+HASH+BASE64")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, errors.New("ledger: verifier key is not an Ed25519 key")
	}
	der := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, raw[1:]...)
	b64 := base64.StdEncoding.EncodeToString(der)
	return []byte("-----BEGIN PUBLIC KEY-----\n" + b64 + "\n-----END PUBLIC KEY-----\n"), nil
}
