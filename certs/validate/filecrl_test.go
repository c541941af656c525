package validate

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cafgate/certs/devca"
)

// TestFileCRL: the development CA's certificates name its CRL file as their distribution point; a
// validator given the CA's directory reads it (good, then revoked), and one without it, or with
// another directory, cannot learn the status and fails closed.
func TestFileCRL(t *testing.T) {
	now := time.Now()
	root := t.TempDir()
	caDir := filepath.Join(root, "ca")
	ca, err := devca.LoadOrCreate(caDir, now)
	if err != nil {
		t.Fatal(err)
	}
	crlURL, err := devca.CRLFileURL(caDir)
	if err != nil {
		t.Fatal(err)
	}
	certPath, _, err := ca.IssueSMIMEWithCRL(filepath.Join(root, "people"), "a@x.test", "A", crlURL, now)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := LoadPEMCertificates(certPath)
	if err != nil {
		t.Fatal(err)
	}
	cert := certs[0]
	if len(cert.CRLDistributionPoints) != 1 || cert.CRLDistributionPoints[0] != crlURL {
		t.Fatalf("distribution points %v, want %s", cert.CRLDistributionPoints, crlURL)
	}
	if _, err := ca.WriteCRL(caDir, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	anchor := Anchor{Name: "dev", Agencies: []string{AnyAgency}, Roots: []*x509.Certificate{ca.Certificate()}}
	req := Request{Cert: cert, Mail: "a@x.test", Agency: "A", Usage: ForEncryption}
	check := func(dirs []string) error {
		v, err := New(Options{Anchors: []Anchor{anchor}, CRLDirs: dirs, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Validate(context.Background(), req)
		return err
	}
	if err := check([]string{caDir}); err != nil {
		t.Fatalf("good certificate, CRL file readable: %v", err)
	}
	for name, dirs := range map[string][]string{"no directories": nil, "another directory": {filepath.Join(root, "people")},
		"a sibling with the same prefix": {caDir + "x"}} {
		if err := check(dirs); ReasonOf(err) != RevocationUnknown {
			t.Errorf("%s: %v, want %s", name, err, RevocationUnknown)
		}
	}
	// A symbolic link out of the directory is not followed out of it.
	outside := filepath.Join(root, "elsewhere.crl")
	if err := os.Rename(filepath.Join(caDir, "ca.crl"), outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(caDir, "ca.crl")); err != nil {
		t.Fatal(err)
	}
	if err := check([]string{caDir}); ReasonOf(err) != RevocationUnknown {
		t.Errorf("CRL file linked from outside the directory: %v", err)
	}
	if err := os.Remove(filepath.Join(caDir, "ca.crl")); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(caDir, cert, devca.ReasonKeyCompromise, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.WriteCRL(caDir, now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := check([]string{caDir}); ReasonOf(err) != Revoked {
		t.Errorf("revoked certificate: %v, want %s", err, Revoked)
	}
}
