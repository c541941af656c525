package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A deliberately small SMTP client that shows every reply as it came, so a test can assert codes,
// enhanced codes and IDs, and can stop half way through DATA.

// reply is one SMTP reply: its code and the text of each line without the "250-" prefix.
type reply struct {
	Code  int
	Lines []string
}

var (
	enhancedRE = regexp.MustCompile(`^([245]\.\d{1,3}\.\d{1,3}) `)
	acceptedRE = regexp.MustCompile(`^2\.0\.0 Accepted as ([0-9A-Z]{16})\b`)
	refusalRE  = regexp.MustCompile(`\(ID ([0-9A-Z]{16})\)\s*$`)
)

func (r reply) String() string {
	var b strings.Builder
	for i, l := range r.Lines {
		sep := "-"
		if i == len(r.Lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s%s", r.Code, sep, l)
		if i < len(r.Lines)-1 {
			b.WriteString(" | ")
		}
	}
	return b.String()
}

// Enhanced is the enhanced status code at the start of the first line, or "".
func (r reply) Enhanced() string {
	if len(r.Lines) == 0 {
		return ""
	}
	if m := enhancedRE.FindStringSubmatch(r.Lines[0] + " "); m != nil {
		return m[1]
	}
	return ""
}

// AcceptedID is the ID of a "250 2.0.0 Accepted as <ID>" reply, or "".
func (r reply) AcceptedID() string {
	if r.Code != 250 || len(r.Lines) == 0 {
		return ""
	}
	if m := acceptedRE.FindStringSubmatch(r.Lines[len(r.Lines)-1]); m != nil {
		return m[1]
	}
	return ""
}

// RefusalID is the ID at the end of a refusal's text, "(ID XXXXXXXXXXXXXXXX)", or "".
func (r reply) RefusalID() string {
	if len(r.Lines) == 0 {
		return ""
	}
	if m := refusalRE.FindStringSubmatch(r.Lines[len(r.Lines)-1]); m != nil {
		return m[1]
	}
	return ""
}

// smtpClient is one connection.
type smtpClient struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// dialSMTP connects (with implicit TLS when conf is set) and reads the greeting.
func dialSMTP(addr string, conf *tls.Config, timeout time.Duration) (*smtpClient, reply, error) {
	d := net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if conf != nil {
		conn, err = tls.DialWithDialer(&d, "tcp", addr, conf)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, reply{}, err
	}
	c := &smtpClient{conn: conn, r: bufio.NewReader(conn), timeout: timeout}
	greet, err := c.readReply()
	if err != nil {
		conn.Close()
		return nil, greet, fmt.Errorf("greeting: %w", err)
	}
	return c, greet, nil
}

func (c *smtpClient) close() { c.conn.Close() }

func (c *smtpClient) readReply() (reply, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	var r reply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return r, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || (line[3] != ' ' && line[3] != '-') {
			if len(line) == 3 {
				line += " "
			} else {
				return r, fmt.Errorf("malformed reply line %q", line)
			}
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return r, fmt.Errorf("malformed reply line %q", line)
		}
		r.Code = code
		r.Lines = append(r.Lines, line[4:])
		if line[3] == ' ' {
			return r, nil
		}
	}
}

func (c *smtpClient) write(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.conn.Write(b)
	return err
}

// cmd sends one command line and reads its reply.
func (c *smtpClient) cmd(line string) (reply, error) {
	if err := c.write([]byte(line + "\r\n")); err != nil {
		return reply{}, err
	}
	return c.readReply()
}

// startTLS runs STARTTLS and the handshake; the caller sends EHLO again.
func (c *smtpClient) startTLS(conf *tls.Config) (reply, error) {
	r, err := c.cmd("STARTTLS")
	if err != nil || r.Code != 220 {
		return r, fmt.Errorf("STARTTLS: %v %v", r, err)
	}
	tc := tls.Client(c.conn, conf)
	_ = tc.SetDeadline(time.Now().Add(c.timeout))
	if err := tc.Handshake(); err != nil {
		return r, fmt.Errorf("TLS handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	c.conn, c.r = tc, bufio.NewReader(tc)
	return r, nil
}

// authPlain sends AUTH PLAIN with an initial response.
func (c *smtpClient) authPlain(user, pass string) (reply, error) {
	return c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
}

// data sends DATA, the dot-stuffed body and the terminator, and reads the final reply. sentAll tells
// whether the whole body and the terminator were handed to the kernel.
func (c *smtpClient) data(body []byte) (r reply, sentAll bool, err error) {
	if r, err = c.cmd("DATA"); err != nil || r.Code != 354 {
		return r, false, err
	}
	if err := c.write(append(dotStuff(body), ".\r\n"...)); err != nil {
		return reply{}, false, err
	}
	r, err = c.readReply()
	return r, true, err
}

// result is how far one submission got.
type result struct {
	Stage   string // the step whose reply ended it: connect, ehlo, starttls, auth, mail, rcpt, data, or "" on 250
	Reply   reply
	SentAll bool // the whole message and its terminator were written
	Err     error
}

func (r result) String() string {
	return fmt.Sprintf("stage %q reply %q err %v", r.Stage, r.Reply.String(), r.Err)
}

// session is one signed-in connection that can send several messages.
type session struct {
	c    *smtpClient
	from string
}

// openSession connects to via ("submission": STARTTLS; "submissions": implicit TLS) and signs in.
func openSession(info *devInfo, via string, conf *tls.Config, a account, timeout time.Duration) (*session, result) {
	addr := info.Listen[via]
	var implicit *tls.Config
	if via == "submissions" {
		implicit = conf
	}
	c, greet, err := dialSMTP(addr, implicit, timeout)
	if err != nil || greet.Code != 220 {
		if c != nil {
			c.close()
		}
		return nil, result{Stage: "connect", Reply: greet, Err: err}
	}
	fail := func(stage string, r reply, err error) (*session, result) {
		c.close()
		return nil, result{Stage: stage, Reply: r, Err: err}
	}
	if r, err := c.cmd("EHLO it.cafgate.test"); err != nil || r.Code != 250 {
		return fail("ehlo", r, err)
	}
	if implicit == nil {
		if r, err := c.startTLS(conf); err != nil {
			return fail("starttls", r, err)
		}
		if r, err := c.cmd("EHLO it.cafgate.test"); err != nil || r.Code != 250 {
			return fail("ehlo", r, err)
		}
	}
	if r, err := c.authPlain(a.Mail, a.Password); err != nil || r.Code != 235 {
		return fail("auth", r, err)
	}
	return &session{c: c, from: a.Mail}, result{}
}

// send runs one transaction; on any non-success the caller should close the session.
func (s *session) send(rcpts []string, body []byte) result {
	if r, err := s.c.cmd("MAIL FROM:<" + s.from + ">"); err != nil || r.Code != 250 {
		return result{Stage: "mail", Reply: r, Err: err}
	}
	for _, rc := range rcpts {
		if r, err := s.c.cmd("RCPT TO:<" + rc + ">"); err != nil || r.Code != 250 {
			return result{Stage: "rcpt", Reply: r, Err: err}
		}
	}
	r, sent, err := s.c.data(body)
	if err != nil || r.Code != 250 {
		return result{Stage: "data", Reply: r, SentAll: sent, Err: err}
	}
	return result{Reply: r, SentAll: true}
}

func (s *session) close() {
	_, _ = s.c.cmd("QUIT")
	s.c.close()
}

// submitOnce connects, signs in as a, sends body to rcpts and closes.
func submitOnce(info *devInfo, via string, conf *tls.Config, a account, rcpts []string, body []byte) result {
	s, res := openSession(info, via, conf, a, 60*time.Second)
	if s == nil {
		return res
	}
	defer s.close()
	return s.send(rcpts, body)
}

// tlsConfig trusts the dev CA only and checks the name "localhost".
func tlsConfig(t testing.TB, info *devInfo) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(info.CACert)
	if err != nil {
		t.Fatalf("dev CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("dev CA %s holds no certificate", info.CACert)
	}
	return &tls.Config{RootCAs: pool, ServerName: info.Hostname, MinVersion: tls.VersionTLS12}
}

// dotStuff doubles a leading dot on every line.
func dotStuff(b []byte) []byte {
	var out bytes.Buffer
	start := true
	for _, ch := range b {
		if start && ch == '.' {
			out.WriteByte('.')
		}
		out.WriteByte(ch)
		start = ch == '\n'
	}
	return out.Bytes()
}

// devEpisode is the Subject tag of the quick start's first sample episode, whose consent shares with
// every sample agency and whose team holds the first active accounts of dev.json.
const devEpisode = "[CAF-2026-000001]"

// newMessage builds a plain-text package for the first sample episode, with CRLF line ends, ending in
// CRLF; the Subject carries the episode reference.
func newMessage(from, to, subject string, lines ...string) []byte {
	subject = devEpisode + " " + subject
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@it.cafgate.test>\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), randomToken(12))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	return []byte(b.String())
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}
