package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeDevConfig writes DIR/cafgate.toml, an ordinary configuration file `cafgate serve` also reads.
func writeDevConfig(sum *devSummary) error {
	domains := devDomains(sum)
	quoted := make([]string, len(domains))
	for i, d := range domains {
		quoted[i] = fmt.Sprintf("%q", d)
	}
	conf := fmt.Sprintf(`# Written by "cafgate dev"; rewritten on every run. See docs/config.md.
hostname = "localhost"
data_dir = "data"

[log]
level = "info"
format = "text"

[tls]
cert_file = "tls/gateway.pem"
key_file = "tls/gateway.key"

# The RSA certificate decrypts what practitioners encrypt to the gateway; the P-256 one signs the
# copies the gateway seals, which also carry the RSA certificate and name it for encrypted replies.
[smime]
cert_file = "smime/gateway@cafgate.test.pem"
key_file = "smime/gateway@cafgate.test.key"
sign_cert_file = "smime/gateway-sign@cafgate.test.pem"
sign_key_file = "smime/gateway-sign@cafgate.test.key"

# Every copy for a practitioner of Eastshire Police is also encrypted to the police archive
# (smime/archive@police.cafgate.test.key decrypts it).
[[smime.escrow]]
name = "police-archive"
cert_file = "smime/archive@police.cafgate.test.pem"
agencies = ["Eastshire Police"]

# The development CA is the one trust anchor, for every agency. Its S/MIME certificates name its CRL
# file (ca/ca.crl, rewritten on every run) as their distribution point, so revocation is "strict".
[[trust.anchor]]
name = "development"
agencies = ["*"]
ca_file = "ca/ca.pem"
revocation = "strict"

[smtp]
submission = %q
submissions = %q

[https]
listen = %q

# Every sample agency's mailboxes are hosted here: copies land in IMAP, read with the directory password.
[imap]
hosted_domains = [%s]
imaps = %q
imap = %q

[[directory]]
name = "development"
type = "file"
file = "directory.ldif"
domains = [%s]
`, sum.Listen["submission"], sum.Listen["submissions"], sum.Listen["https"], strings.Join(quoted, ", "),
		sum.Listen["imaps"], sum.Listen["imap"], strings.Join(quoted, ", "))
	return writeFileAtomic(sum.Config, []byte(conf), 0o600)
}

func printHowTo(c *cli, sum *devSummary) {
	var from, to *devAccount
	for i := range sum.Accounts {
		a := &sum.Accounts[i]
		if a.Status != "active" {
			continue
		}
		if from == nil {
			from = a
		} else if to == nil && a.Agency != from.Agency {
			to = a
		}
	}
	ref := "CAF-2026-000001"
	if len(sum.Episodes) > 0 {
		ref = sum.Episodes[0].Reference
	}
	fmt.Fprintf(c.out, `
cafgate development gateway is running.
  submission (STARTTLS): %s
  submission (TLS):      %s
  HTTPS:                 https://%s/healthz
  IMAP (TLS):            %s   (user name: the mail address; password as for SMTP)
  IMAP (STARTTLS):       %s
  CA certificate:        %s
  accounts and secrets:  %s

How to send your first package (swaks; apt-get install swaks):

  swaks --server %s --tls --tls-verify --tls-ca-path %s \
    --auth PLAIN --auth-user %s --auth-password '%s' \
    --from %s --to %s \
    --header 'Subject: [%s] review notes' --body 'A first test package.'

The answer ends with "250 2.0.0 Accepted as ID". The Subject's reference names the sample episode the
package belongs to; dev.json lists both sample episodes, their teams and consent. Stop with Ctrl-C; run
the same command again to reuse %s.
`, sum.Listen["submission"], sum.Listen["submissions"], sum.Listen["https"], sum.Listen["imaps"], sum.Listen["imap"], sum.CACert,
		filepath.Join(sum.Dir, "dev.json"), sum.Listen["submission"], sum.CACert, from.Mail, from.Password,
		from.Mail, to.Mail, ref, sum.Dir)
}

func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), mode)
}

// writeFileAtomic writes a temporary file, fsyncs it, renames it over path and fsyncs the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readCertDER(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return blk.Bytes, nil
}
