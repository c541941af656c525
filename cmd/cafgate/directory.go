package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"cafgate/configs"
	"cafgate/directory"
	"cafgate/directory/ldap"
	"cafgate/directory/ldif"
)

// lookupCacheSize is the most look-up answers one LDAP directory's cache holds.
const lookupCacheSize = 10000

func directoryCommands() []command {
	return []command{
		{name: "directory test", args: "--config FILE --dir NAME --user MAIL [--password]",
			short: "check a configured directory: connect, bind as the service account, look MAIL up and print the mapped practitioner; with --password also sign in (the password is read without echo, or from stdin)",
			run:   runDirectoryTest, flags: directoryTestFlags},
	}
}

func directoryTestFlags(fs *flag.FlagSet) {
	configFlag(fs)
	fs.String("dir", "", "name of the [[directory]] to check")
	fs.String("user", "", "mail address to look up")
	fs.Bool("password", false, "also sign in as --user: asks for the password (no echo), or reads its first line from stdin")
}

func runDirectoryTest(c *cli, fs *flag.FlagSet, _ []string) error {
	name, user := flagString(fs, "dir"), flagString(fs, "user")
	if name == "" || user == "" {
		return fmt.Errorf("%w: --dir and --user are required", errUsage)
	}
	cfg, err := configs.Load(flagString(fs, "config"))
	if err != nil {
		return err
	}
	var dc *configs.DirectoryConfig
	var names []string
	for i := range cfg.Directories {
		names = append(names, cfg.Directories[i].Name)
		if cfg.Directories[i].Name == name {
			dc = &cfg.Directories[i]
		}
	}
	if dc == nil {
		return fmt.Errorf("%w: no directory %q in the configuration (there are: %s)", errUsage, name, strings.Join(names, ", "))
	}
	var password string
	if flagBool(fs, "password") {
		if password, err = readPassword(os.Stdin, c.err, user); err != nil {
			return err
		}
	}
	return directoryTest(c.out, dc, user, password, flagBool(fs, "password"))
}

// directoryTest prints what the directory says about user, and whether user signs in with password.
func directoryTest(w io.Writer, dc *configs.DirectoryConfig, user, password string, signIn bool) error {
	ctx := context.Background()
	var dir directory.Directory
	switch dc.Type {
	case "ldap":
		d, err := openLDAP(dc, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer d.Close()
		start := time.Now()
		if err := d.Check(ctx); err != nil {
			fmt.Fprintf(w, "connect, TLS, bind as %s: FAILED after %v\n", dc.LDAP.BindDN, time.Since(start).Round(time.Millisecond))
			return err
		}
		fmt.Fprintf(w, "connect, TLS, bind as %s, read %s: ok (%v)\n", dc.LDAP.BindDN, dc.LDAP.BaseDN, time.Since(start).Round(time.Millisecond))
		dir = d
	default:
		d, err := ldif.Open(dc.File, dc.Name, dc.Domains)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "loaded %s: ok\n", dc.File)
		dir = d
	}
	start := time.Now()
	p, err := dir.Lookup(ctx, user)
	if err != nil {
		fmt.Fprintf(w, "look-up of %s: FAILED after %v\n", user, time.Since(start).Round(time.Millisecond))
		return err
	}
	fmt.Fprintf(w, "look-up of %s: ok (%v)\n", user, time.Since(start).Round(time.Millisecond))
	printPractitioner(w, p)
	if !signIn {
		return nil
	}
	start = time.Now()
	if _, err := dir.Authenticate(ctx, user, password); err != nil {
		fmt.Fprintf(w, "sign-in: REFUSED after %v\n", time.Since(start).Round(time.Millisecond))
		return err
	}
	fmt.Fprintf(w, "sign-in: ok (%v)\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func printPractitioner(w io.Writer, p *directory.Practitioner) {
	standing := "may send and receive"
	if err := p.Standing(time.Now()); err != nil {
		standing = "may NOT send or receive: " + strings.TrimPrefix(err.Error(), "directory: ")
	}
	vetting := "none (counts as lapsed)"
	if !p.VettingValidUntil.IsZero() {
		vetting = p.VettingValidUntil.Format(time.RFC3339)
	}
	roles := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = string(r)
	}
	fmt.Fprintf(w, "  dn:                  %s\n  mail:                %s\n  name:                %s\n  agency:              %s\n",
		p.DN, p.Mail, p.Name, p.Agency)
	fmt.Fprintf(w, "  roles:               %s\n  certificates:        %d\n  vetting valid until: %s\n",
		strings.Join(roles, ", "), len(p.Certificates), vetting)
	fmt.Fprintf(w, "  disabled:            %v\n  sensitive service:   %v\n  directory:           %s\n  standing:            %s\n",
		p.Disabled, p.SensitiveService, p.Directory, standing)
}

// readPassword reads a password from in: after a prompt with echo turned off when in is a terminal
// (refusing to read if echo cannot be turned off), else its first line.
func readPassword(in *os.File, prompt io.Writer, user string) (string, error) {
	if st, err := in.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		if err := stty(in, "-echo"); err != nil {
			return "", fmt.Errorf("cannot turn terminal echo off, so not asking for the password (pipe it on stdin instead): %w", err)
		}
		defer func() {
			stty(in, "echo")
			fmt.Fprintln(prompt)
		}()
		fmt.Fprintf(prompt, "Password for %s: ", user)
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func stty(tty *os.File, arg string) error {
	cmd := exec.Command("stty", arg)
	cmd.Stdin = tty
	return cmd.Run()
}

// openLDAP builds the LDAP directory dc describes; the caller wraps it in a look-up cache.
func openLDAP(dc *configs.DirectoryConfig, log *slog.Logger) (*ldap.Directory, error) {
	o, err := ldapOptions(dc, log)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", dc.Name, err)
	}
	return ldap.New(o)
}

func ldapOptions(dc *configs.DirectoryConfig, log *slog.Logger) (ldap.Options, error) {
	l := dc.LDAP
	o := ldap.Options{Name: dc.Name, Domains: dc.Domains, URL: l.URL, InsecurePlain: l.InsecurePlain,
		BindDN: l.BindDN, BaseDN: l.BaseDN, ConnectTimeout: l.ConnectTimeout.D(), Timeout: l.Timeout.D(),
		PoolSize: l.PoolSize, Agency: l.Agency, Agencies: l.Agencies, Log: log,
		TLS: &tls.Config{ServerName: l.TLSServerName, MinVersion: tls.VersionTLS12}}
	pw, err := os.ReadFile(l.BindPasswordFile)
	if err != nil {
		return o, fmt.Errorf("bind_password_file: %w", err)
	}
	o.BindPassword = strings.TrimRight(strings.SplitN(string(pw), "\n", 2)[0], "\r")
	if l.CAFile != "" {
		pem, err := os.ReadFile(l.CAFile)
		if err != nil {
			return o, fmt.Errorf("ca_file: %w", err)
		}
		o.TLS.RootCAs = x509.NewCertPool()
		if !o.TLS.RootCAs.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("ca_file %s holds no PEM certificate", l.CAFile)
		}
	}
	o.Map, err = ldapMap(l.Map, l.Groups)
	return o, err
}

// ldapMap is the preset with the configuration's changes: "" keeps the preset's value, "none" clears it.
func ldapMap(mc configs.LDAPMapConfig, groups []configs.LDAPGroupConfig) (ldap.Map, error) {
	m, err := ldap.Preset(mc.Preset)
	if err != nil {
		return m, err
	}
	set := func(dst *string, v string) {
		switch v {
		case "":
		case "none":
			*dst = ""
		default:
			*dst = v
		}
	}
	set(&m.Filter, mc.Filter)
	set(&m.Agency, mc.Agency)
	set(&m.Roles, mc.Roles)
	set(&m.Groups, mc.Groups)
	set(&m.Certificate, mc.Certificate)
	set(&m.Vetting, mc.Vetting)
	set(&m.Sensitive, mc.Sensitive)
	if len(mc.Mail) > 0 {
		m.Mail = mc.Mail
	}
	if len(mc.Name) > 0 {
		m.Name = mc.Name
	}
	switch mc.Disabled {
	case "":
	case "none":
		m.Disabled, m.DisabledBits = "", 0
	default:
		if m.Disabled, m.DisabledBits, err = ldap.ParseDisabled(mc.Disabled); err != nil {
			return m, err
		}
	}
	for _, g := range groups {
		m.GroupRoles = append(m.GroupRoles, ldap.GroupRole{DN: g.DN, Role: directory.Role(g.Role), SensitiveService: g.SensitiveService})
	}
	return m, nil
}

// probeLDAP checks in the background that a directory answers at start, so an outage shows in the
// log before the first practitioner meets it. It never stops the gateway: requests fail closed and
// the directory is tried again on each.
func probeLDAP(d *ldap.Directory, timeout time.Duration, log *slog.Logger) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := d.Check(ctx); err != nil {
			log.Warn("directory not answering at start; sign-in and mail for its domains get temporary failures until it does",
				"directory", d.Name(), "err", err.Error())
			return
		}
		log.Info("directory answering", "directory", d.Name())
	}()
}
