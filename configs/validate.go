package configs

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// validate checks every setting and returns all problems, not just the first.
func (c *Config) validate(file string) Problems {
	var ps Problems
	bad := func(setting, format string, args ...any) {
		ps = append(ps, Problem{File: file, Setting: setting, Message: fmt.Sprintf(format, args...)})
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t/@") {
		bad("hostname", "must be a host name such as cafgate.example.org, not %q", c.Hostname)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "must be json or text, not %q", c.Log.Format)
	}
	if c.TLS.MinVersion != "1.2" && c.TLS.MinVersion != "1.3" {
		bad("tls.min_version", "must be 1.2 or 1.3, not %q", c.TLS.MinVersion)
	}
	checkFile(bad, "tls.cert_file", c.TLS.CertFile, true)
	checkKey(bad, "tls.key_file", c.TLS.KeyFile, true)
	if (c.SMIME.CertFile == "") != (c.SMIME.KeyFile == "") {
		bad("smime", "cert_file and key_file must both be set or both be empty")
	}
	checkFile(bad, "smime.cert_file", c.SMIME.CertFile, false)
	checkKey(bad, "smime.key_file", c.SMIME.KeyFile, false)
	checkAddr(bad, "smtp.submission", c.SMTP.Submission)
	checkAddr(bad, "smtp.submissions", c.SMTP.Submissions)
	checkAddr(bad, "https.listen", c.HTTPS.Listen)
	if c.SMTP.Submission == "" && c.SMTP.Submissions == "" {
		bad("smtp", "submission and submissions are both empty: nobody could send")
	}
	positive := map[string]int64{
		"smtp.max_message_size": int64(c.SMTP.MaxMessageSize), "smtp.max_recipients": int64(c.SMTP.MaxRecipients),
		"smtp.max_line_length": int64(c.SMTP.MaxLineLength), "smtp.read_timeout": int64(c.SMTP.ReadTimeout),
		"smtp.write_timeout": int64(c.SMTP.WriteTimeout), "smtp.max_sessions": int64(c.SMTP.MaxSessions),
		"smtp.max_sessions_per_ip": int64(c.SMTP.MaxSessionsPerIP), "smtp.auth_failure_window": int64(c.SMTP.AuthFailureWindow),
		"smtp.auth_failures_before_delay": int64(c.SMTP.AuthFailuresBeforeDelay),
		"smtp.auth_failures_before_block": int64(c.SMTP.AuthFailuresBeforeBlock), "store.max_batch": int64(c.Store.MaxBatch),
	}
	for _, k := range sortedKeys(positive) {
		if positive[k] <= 0 {
			bad(k, "must be greater than zero (an unlimited setting is not allowed)")
		}
	}
	if c.SMTP.MaxLineLength > 0 && c.SMTP.MaxLineLength < 1000 {
		bad("smtp.max_line_length", "must be at least 1000 (RFC 5321 allows 1000-byte lines)")
	}
	if c.SMTP.AuthFailuresBeforeBlock < c.SMTP.AuthFailuresBeforeDelay {
		bad("smtp.auth_failures_before_block", "must not be below auth_failures_before_delay")
	}
	ps = append(ps, c.validateDirectories(file)...)
	ps = append(ps, c.validateTrust(file)...)
	ps = append(ps, c.validateSMIME(file)...)
	ps = append(ps, c.validateRelay(file)...)
	ps = append(ps, c.validateAPI(file)...)
	ps = append(ps, c.validateIMAP(file)...)
	ps = append(ps, c.validatePickup(file)...)
	ps = append(ps, c.validateLedger(file)...)
	return ps
}

func (c *Config) validateDirectories(file string) Problems {
	var ps Problems
	if len(c.Directories) == 0 {
		return Problems{{File: file, Setting: "directory", Message: "at least one [[directory]] is required: the gateway must know who practitioners are"}}
	}
	names, owner := map[string]bool{}, map[string]string{}
	for i, d := range c.Directories {
		at := fmt.Sprintf("directory[%d]", i)
		bad := func(setting, format string, args ...any) {
			ps = append(ps, Problem{File: file, Setting: at + "." + setting, Message: fmt.Sprintf(format, args...)})
		}
		if d.Name == "" {
			bad("name", "is required")
		} else if names[d.Name] {
			bad("name", "%q is used by another directory", d.Name)
		}
		names[d.Name] = true
		switch d.Type {
		case "file":
			checkFile(bad, "file", d.File, true)
		case "ldap":
			resolveLDAP(&c.Directories[i].LDAP, filepath.Dir(file)) // belongs in resolve(); here until load.go calls it
			validateLDAP(bad, &c.Directories[i].LDAP)
		default:
			bad("type", "must be file or ldap, not %q", d.Type)
		}
		if len(d.Domains) == 0 {
			bad("domains", "list at least one mail domain this directory answers for")
		}
		for _, dom := range d.Domains {
			if dom == "" || strings.ContainsAny(dom, "@ /") {
				bad("domains", "%q is not a mail domain", dom)
			} else if o, ok := owner[dom]; ok {
				bad("domains", "%q already belongs to directory %q", dom, o)
			}
			owner[dom] = d.Name
		}
	}
	return ps
}

type badFunc func(setting, format string, args ...any)

func checkFile(bad badFunc, setting, path string, required bool) {
	if path == "" {
		if required {
			bad(setting, "is required")
		}
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		bad(setting, "cannot read %s: %v", path, errText(err))
	} else if st.IsDir() {
		bad(setting, "%s is a directory, not a file", path)
	}
}

func checkKey(bad badFunc, setting, path string, required bool) {
	checkFile(bad, setting, path, required)
	if path == "" {
		return
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		bad(setting, "%s is readable by group or others (mode %04o); make it 0600", path, st.Mode().Perm())
	}
}

func checkAddr(bad badFunc, setting, addr string) {
	if addr == "" {
		return
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		bad(setting, "%q is not a listen address such as :587 or 127.0.0.1:587", addr)
	}
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
