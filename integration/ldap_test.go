package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cafgate/directory/ldap/slapdtest"
)

// TestLDAPEndToEnd runs the built gateway (`cafgate serve`) against a real OpenLDAP slapd holding the
// cafgate schema and the development directory (with its generated passwords), reached over ldap:// +
// StartTLS with the development CA, and submits with Python's smtplib: sign-in works, every refusal
// has one face, slapd stopped gives 454 4.7.0 at AUTH and 451 4.4.3 at RCPT, and after slapd restarts
// the same gateway process works again.
//
// slapdtest is a test fixture using only the standard library and slapd's programs; nothing of the
// gateway itself is linked.
func TestLDAPEndToEnd(t *testing.T) {
	t.Parallel()
	requirePython(t)
	if m := slapdtest.Missing(); len(m) > 0 {
		t.Fatalf("%v not installed: integration/ci.sh installs slapd and ldap-utils", m)
	}
	t0 := time.Now()
	phase := func(name string) { t.Logf("%6v %s", time.Since(t0).Round(time.Millisecond), name) }
	g := startGateway(t) // writes the CA, the TLS certificate and the directory with passwords
	info := g.Info()
	g.stop()
	dir := info.Dir
	servicePW := "service pw " + time.Now().Format(time.RFC3339Nano)
	dirLDIF, err := os.ReadFile(filepath.Join(dir, "directory.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	schema, _ := filepath.Abs("../configs/cafgate.schema.ldif")
	srv := slapdtest.Start(t, slapdtest.Options{Suffix: ldapBase, Schemas: []string{schema},
		CertFile: filepath.Join(dir, "tls/gateway.pem"), KeyFile: filepath.Join(dir, "tls/gateway.key"),
		LDIF: [][]byte{dirLDIF, ldapServiceLDIF(servicePW)}})
	phase("cafgate dev set up, slapd started")
	config, submission := ldapConfig(t, dir, srv.URL, servicePW)
	serve := startLDAPServe(t, config, submission)
	phase("cafgate serve started")
	host, port, _ := strings.Cut(submission, ":")
	env := []string{"LDAP_IT_HOST=" + host, "LDAP_IT_PORT=" + port, "LDAP_IT_CA=" + info.CACert}

	team := ldapEpisodeTeam(t, info)
	sender, rcpt, rcpt2 := team[0], team[1], team[2]
	send := func(from account, to string) smtpStep {
		return last(t, ldapSMTP(t, env, nil, "send", from.Mail, from.Password, to))
	}
	if st := send(sender, rcpt.Mail); st.Stage != "data" || st.Code != 250 || !strings.HasPrefix(st.Text, "2.0.0 Accepted as ") {
		t.Fatalf("submission signed in against slapd: %v", st)
	}

	phase("package accepted")
	// Every sign-in refusal has one face: wrong password, unknown user, disabled, lapsed.
	lapsed, disabled := info.accountWith(t, "lapsed"), info.accountWith(t, "disabled")
	id := regexp.MustCompile(`\(ID [0-9A-Z]+\)`)
	var faces []string
	for i, c := range [][2]string{{sender.Mail, sender.Password + "x"}, {"nobody@school.cafgate.test", sender.Password},
		{disabled.Mail, disabled.Password}, {lapsed.Mail, lapsed.Password}, {"*)(mail=*@school.cafgate.test", sender.Password}} {
		src := fmt.Sprintf("LDAP_IT_SOURCE=127.0.0.%d", 10+i) // one address each: no failed sign-in limit
		st := last(t, ldapSMTP(t, append(env, src), nil, "auth", c[0], c[1]))
		if st.Stage != "auth" || st.Code != 535 || !strings.HasPrefix(st.Text, "5.7.8 ") {
			t.Errorf("sign-in as %s: %v; want 535 5.7.8", c[0], st)
		}
		faces = append(faces, id.ReplaceAllString(st.Text, ""))
	}
	for _, f := range faces[1:] {
		if f != faces[0] {
			t.Errorf("refusals differ: %q vs %q", f, faces[0])
		}
	}

	phase("refusals")
	// slapd stopped mid-session: 451 4.4.3 at RCPT (after the 1 s look-up cache has expired).
	steps := ldapSMTP(t, env, func() { srv.Stop(); time.Sleep(1100 * time.Millisecond) }, "rcpt-later", sender.Mail, sender.Password, rcpt2.Mail)
	if st := last(t, steps); st.Stage != "rcpt" || st.Code != 451 || !strings.HasPrefix(st.Text, "4.4.3 ") {
		t.Errorf("RCPT with slapd stopped: %v; want 451 4.4.3", steps)
	}
	// And 454 4.7.0 at AUTH, never 535.
	if st := last(t, ldapSMTP(t, append(env, "LDAP_IT_SOURCE=127.0.0.20"), nil, "auth", sender.Mail, sender.Password)); st.Code != 454 || !strings.HasPrefix(st.Text, "4.7.0 ") {
		t.Errorf("AUTH with slapd stopped: %v; want 454 4.7.0", st)
	}

	phase("slapd stopped: temporary failures")
	// slapd back: the same gateway process signs in and accepts again.
	srv.Restart()
	if st := send(sender, rcpt2.Mail); st.Stage != "data" || st.Code != 250 {
		t.Errorf("submission after slapd restarted: %v", st)
	}
	phase("slapd restarted: accepted again")
	log := serve.log()
	for _, want := range []string{"directory answering", "directory unavailable", "directory answering again"} {
		if !strings.Contains(log, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
	for _, secret := range []string{sender.Password, servicePW} {
		if strings.Contains(log, secret) {
			t.Errorf("gateway log holds a password")
		}
	}
}
