package integration

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// TestLogsHoldNoSecrets submits a message with a unique subject, body marker and child identifier, and
// signs in once with a wrong password: the gateway's stderr must hold none of them, nor the password,
// while it does log the refusal's ID (so the log is really being written).
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	g := startGateway(t)
	info := g.Info()
	sender := info.accountWith(t, "active")
	rcpt := info.accountWith(t, "active", sender.Mail)
	conf := tlsConfig(t, info)

	subject := "Subject-Marker-" + randomToken(12)
	marker := "Body-Marker-" + randomToken(12)
	child := "CHILD-" + strings.ToUpper(randomToken(10))
	body := newMessage(sender.Mail, rcpt.Mail, subject, "Assessment notes "+marker+".", "Child identifier: "+child)
	for _, via := range []string{"submission", "submissions"} {
		r := submitOnce(info, via, conf, sender, []string{rcpt.Mail}, body)
		if r.Reply.AcceptedID() == "" {
			t.Fatalf("submission over %s: %v", via, r)
		}
	}
	wrong := "Wrong-Password-" + randomToken(10)
	_, res := openSession(info, "submissions", conf, account{Mail: sender.Mail, Password: wrong}, 30*time.Second)
	if res.Stage != "auth" || res.Reply.Code != 535 || res.Reply.RefusalID() == "" {
		t.Fatalf("wrong password: %v", res)
	}
	g.stop()

	log := g.stderr()
	secrets := map[string]string{
		"subject":            subject,
		"body marker":        marker,
		"child identifier":   child,
		"password":           sender.Password,
		"wrong password":     wrong,
		"AUTH PLAIN token":   base64.StdEncoding.EncodeToString([]byte("\x00" + sender.Mail + "\x00" + sender.Password)),
		"wrong PLAIN token":  base64.StdEncoding.EncodeToString([]byte("\x00" + sender.Mail + "\x00" + wrong)),
		"password in base64": base64.StdEncoding.EncodeToString([]byte(sender.Password)),
	}
	for what, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the gateway's stderr holds the %s %q", what, s)
		}
	}
	if id := res.Reply.RefusalID(); strings.Count(log, id) != 1 {
		t.Errorf("the wrong-password refusal's ID %s appears %d times in stderr, want 1", id, strings.Count(log, id))
	}
}
