package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"cafgate/certs/devca"
	"cafgate/configs"
	"cafgate/directory/ldif"
	"cafgate/mailbox"
)

func devFlags(fs *flag.FlagSet) {
	fs.String("dir", "cafgate-dev", "directory holding the development setup (created on first run, reused after)")
	fs.String("ports", "fixed", "fixed: 127.0.0.1:10587 (SMTP STARTTLS), :10465 (SMTP TLS), :10443 (HTTPS), :10993 (IMAPS), :10143 (IMAP STARTTLS); auto: free ports chosen at start")
}

// devPorts are the fixed development listen addresses.
var devPorts = map[string]string{"submission": "127.0.0.1:10587", "submissions": "127.0.0.1:10465", "https": "127.0.0.1:10443",
	"imaps": "127.0.0.1:10993", "imap": "127.0.0.1:10143"}

// devAccount is one sample practitioner in dev.json.
type devAccount struct {
	Mail             string   `json:"mail"`
	Password         string   `json:"password"`
	TOTPSecret       string   `json:"totp_secret"`
	Name             string   `json:"name"`
	Agency           string   `json:"agency"`
	Roles            []string `json:"roles"`
	Status           string   `json:"status"` // active, lapsed or disabled
	SensitiveService bool     `json:"sensitive_service"`
	Cert             string   `json:"cert"`
	Key              string   `json:"key"`
}

// devSummary is DIR/dev.json, what scripts and tests drive the quick start by.
type devSummary struct {
	Dir      string                `json:"dir"`
	Config   string                `json:"config"`
	CACert   string                `json:"ca_cert"`
	Hostname string                `json:"hostname"`
	Listen   map[string]string     `json:"listen"`
	Accounts []devAccount          `json:"accounts"`
	Episodes []mailbox.SeedEpisode `json:"episodes"`
	PID      int                   `json:"pid"`
}

// devSecrets is DIR/secrets.json (0600): the generated passwords and TOTP secrets, reused on later runs.
type devSecrets struct {
	Passwords map[string]string `json:"passwords"`
	TOTP      map[string]string `json:"totp"`
}

func runDev(c *cli, fs *flag.FlagSet, _ []string) error {
	dir, err := filepath.Abs(flagString(fs, "dir"))
	if err != nil {
		return err
	}
	mode := flagString(fs, "ports")
	if mode != "fixed" && mode != "auto" {
		return fmt.Errorf("%w: --ports must be fixed or auto", errUsage)
	}
	os.Remove(filepath.Join(dir, "dev.json")) // a stale one must not be mistaken for this run's
	sum, err := devSetup(dir, time.Now())
	if err != nil {
		return err
	}
	ls, err := devListen(mode)
	if err != nil {
		return err
	}
	for role, l := range ls {
		sum.Listen[role] = l.Addr().String()
	}
	if err := writeDevConfig(sum); err != nil {
		return err
	}
	cfg, err := configs.Load(sum.Config)
	if err != nil {
		return err
	}
	return serve(cfg, c.err, ls, func(g *gw) error {
		childKey, err := mailbox.DeriveChildKey(g.key)
		if err != nil {
			return err
		}
		if sum.Episodes, err = mailbox.SeedDevEpisodes(context.Background(), g.store, childKey, g.dir); err != nil {
			return fmt.Errorf("sample episodes: %w", err)
		}
		for _, acc := range sum.Accounts {
			if err := g.store.ImportTOTPSecret(context.Background(), acc.Mail, acc.TOTPSecret); err != nil {
				return fmt.Errorf("TOTP secret of %s: %w", acc.Mail, err)
			}
		}
		sum.Listen["admin_socket"] = g.addrs["admin_socket"]
		sum.PID = os.Getpid()
		if err := writeJSON(filepath.Join(dir, "dev.json"), sum, 0o600); err != nil {
			return fmt.Errorf("writing dev.json: %w", err)
		}
		printHowTo(c, sum)
		return nil
	})
}

func devListen(mode string) (map[string]net.Listener, error) {
	ls := map[string]net.Listener{}
	for role, addr := range devPorts {
		if mode == "auto" {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, fmt.Errorf("listen for %s on %s: %w (is another cafgate dev running? try --ports auto)", role, addr, err)
		}
		ls[role] = l
	}
	return ls, nil
}

// devSetup creates (first run) or reuses (later runs) the CA, certificates, accounts and directory.
func devSetup(dir string, now time.Time) (*devSummary, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := devca.LoadOrCreate(filepath.Join(dir, "ca"), now)
	if err != nil {
		return nil, fmt.Errorf("development CA: %w", err)
	}
	// The development CA publishes its CRL as a file beside it, named by every S/MIME certificate it
	// issues, and rewritten on every run (revocations in ca/revoked.json).
	crlURL, err := devca.CRLFileURL(filepath.Join(dir, "ca"))
	if err != nil {
		return nil, err
	}
	if _, err := ca.WriteCRL(filepath.Join(dir, "ca"), now, devCRLValidity); err != nil {
		return nil, fmt.Errorf("development CRL: %w", err)
	}
	if _, _, err := ca.IssueTLS(filepath.Join(dir, "tls"), "gateway", []string{"localhost", "127.0.0.1", "::1"}, now); err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if _, _, err := ca.IssueSMIMEWithCRL(filepath.Join(dir, "smime"), "gateway@cafgate.test", "cafgate gateway", crlURL, now); err != nil {
		return nil, fmt.Errorf("gateway S/MIME certificate: %w", err)
	}
	// A separate P-256 key signs the copies the gateway seals (an RSA-2048 signature costs most of a
	// copy's CPU); the RSA certificate above keeps decrypting submissions.
	if _, _, err := ca.IssueSMIMESigning(filepath.Join(dir, "smime"), devSigningFile, "gateway@cafgate.test", "cafgate gateway", crlURL, now); err != nil {
		return nil, fmt.Errorf("gateway S/MIME signing certificate: %w", err)
	}
	if _, _, err := ca.IssueSMIMEWithCRL(filepath.Join(dir, "smime"), devEscrowMail, "Eastshire Police archive", crlURL, now); err != nil {
		return nil, fmt.Errorf("escrow certificate: %w", err)
	}
	entries, err := ldif.Parse(bytes.NewReader(configs.SampleDirectory))
	if err != nil {
		return nil, fmt.Errorf("sample directory: %w", err)
	}
	sec, err := loadOrMakeSecrets(filepath.Join(dir, "secrets.json"), entries)
	if err != nil {
		return nil, err
	}
	sum := &devSummary{Dir: dir, Config: filepath.Join(dir, "cafgate.toml"), CACert: filepath.Join(dir, "ca", "ca.pem"),
		Hostname: "localhost", Listen: map[string]string{}}
	certDER := map[string][]byte{}
	for _, e := range entries {
		mail := entryMail(e)
		if mail == "" {
			continue
		}
		acc := devAccount{Mail: mail, Password: sec.Passwords[mail], TOTPSecret: sec.TOTP[mail]}
		if devHasCertificate(mail) {
			name := firstValue(e, "cn")
			if acc.Cert, acc.Key, err = ca.IssueSMIMEWithCRL(filepath.Join(dir, "people"), mail, name, crlURL, now); err != nil {
				return nil, fmt.Errorf("certificate for %s: %w", mail, err)
			}
			if certDER[mail], err = readCertDER(acc.Cert); err != nil {
				return nil, err
			}
		}
		sum.Accounts = append(sum.Accounts, acc)
	}
	var buf bytes.Buffer
	if err := ldif.Marshal(&buf, ldif.WithSecrets(entries, sec.Passwords, certDER)); err != nil {
		return nil, err
	}
	ldifPath := filepath.Join(dir, "directory.ldif")
	if err := writeFileAtomic(ldifPath, buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return sum, describeAccounts(sum, ldifPath, now)
}

// devSigningFile is the base name, in DIR/smime, of the gateway's P-256 signing certificate and key.
const devSigningFile = "gateway-sign@cafgate.test"

// devHasCertificate decides which sample practitioners get S/MIME certificates: everyone outside the
// school, so that both delivery paths (S/MIME and one-time link) have sample recipients.
func devHasCertificate(mail string) bool { return !strings.HasSuffix(mail, "@school.cafgate.test") }

// describeAccounts fills each account's name, agency, roles and status from the directory itself.
func describeAccounts(sum *devSummary, ldifPath string, now time.Time) error {
	d, err := ldif.Open(ldifPath, "dev", devDomains(sum))
	if err != nil {
		return fmt.Errorf("development directory: %w", err)
	}
	for i := range sum.Accounts {
		a := &sum.Accounts[i]
		p, err := d.Lookup(context.Background(), a.Mail)
		if err != nil {
			return fmt.Errorf("development directory: %s: %w", a.Mail, err)
		}
		a.Name, a.Agency, a.SensitiveService = p.Name, p.Agency, p.SensitiveService
		for _, r := range p.Roles {
			a.Roles = append(a.Roles, string(r))
		}
		a.Status = "active"
		if p.Disabled {
			a.Status = "disabled"
		} else if p.Standing(now) != nil {
			a.Status = "lapsed"
		}
	}
	return nil
}

func devDomains(sum *devSummary) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range sum.Accounts {
		d := a.Mail[strings.LastIndexByte(a.Mail, '@')+1:]
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func loadOrMakeSecrets(path string, entries []ldif.Entry) (*devSecrets, error) {
	sec := &devSecrets{Passwords: map[string]string{}, TOTP: map[string]string{}}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, sec); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	changed := false
	for _, e := range entries {
		mail := entryMail(e)
		if mail == "" || sec.Passwords[mail] != "" {
			continue
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "cafgate dev", AccountName: mail})
		if err != nil {
			return nil, err
		}
		sec.Passwords[mail], sec.TOTP[mail], changed = randomPassword(), key.Secret(), true
	}
	if changed {
		return sec, writeJSON(path, sec, 0o600)
	}
	return sec, nil
}

// randomPassword returns 4 groups of 4 letters and digits (about 82 bits), easy to type.
func randomPassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	var b strings.Builder
	for i := 0; i < 16; i++ {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	return b.String()
}

func entryMail(e ldif.Entry) string { return strings.ToLower(firstValue(e, "mail")) }

func firstValue(e ldif.Entry, name string) string {
	if v := e.Get(name); len(v) > 0 {
		return string(v[0])
	}
	return ""
}
