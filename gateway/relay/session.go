// Sessions: opening an SMTP connection to one of a destination's hosts with the route's protection
// (STARTTLS required, implicit TLS, or explicitly plain), AUTH PLAIN to a smart host, and sending one
// queue entry over it.

package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"cafgate/mailbox"
)

// session is one open, greeted (and, unless the route says none, TLS-protected) SMTP connection.
type session struct {
	c       *smtp.Client
	raw     net.Conn // the TCP connection: closing it ends everything
	conn    net.Conn // what go-smtp talks through (raw, or TLS above it)
	host    string
	tls     string // "TLS1.3", "TLS1.2" or "none"
	maxSize int    // the server's SIZE limit; 0 when it gives none
	broken  bool   // the connection can no longer be used
	// pipelining: the server offers PIPELINING (RFC 2920) and the relay may use it
	pipelining bool
	// chunking: the server offers CHUNKING (RFC 3030) and the route allows BDAT
	chunking bool

	cmdTimeout, dataTimeout time.Duration // for the DATA command, and for the data and its answer

	tp *textproto.Conn // the relay's own reader and writer on conn (dataConn), made once per session
}

// dataConn returns the session's textproto.Conn on conn, made at its first use: one per session,
// not one (two 4 KiB buffers) per copy. Never closed: that would close the session's connection.
func (s *session) dataConn() *textproto.Conn {
	if s.tp == nil {
		s.tp = textproto.NewConn(s.conn)
	}
	return s.tp
}

// open tries the destination's hosts in order until one gives a session.
func (r *Relay) open(ctx context.Context, domain string, rt *Route) (*session, *failure) {
	ts, f := r.targets(ctx, domain, rt)
	if f != nil {
		f.session = true
		return nil, f
	}
	for _, t := range ts {
		s, err := r.openOne(ctx, t, rt)
		if err == nil {
			return s, nil
		}
		f = err
		r.opt.Log.Info("relay: host refused a session", "domain", domain, "host", t.host, "status", f.status, "answer", f.answer)
	}
	f.session = true
	return nil, f
}

// openOne connects to t and greets it as the route demands.
func (r *Relay) openOne(ctx context.Context, t target, rt *Route) (*session, *failure) {
	dctx, cancel := context.WithTimeout(ctx, r.opt.ConnectTimeout)
	conn, err := r.opt.Dial(dctx, "tcp", t.addr)
	cancel()
	if err != nil {
		return nil, connectFailure(t.host, err)
	}
	s := &session{raw: conn, host: t.host, tls: "none"}
	if err := r.greet(s, t, rt); err != nil {
		conn.Close()
		return nil, connectFailure(t.host, err)
	}
	s.maxSize, _ = s.c.MaxMessageSize()
	s.pipelining, _ = s.c.Extension("PIPELINING")
	s.pipelining = s.pipelining && !r.opt.noPipelining
	s.chunking, _ = s.c.Extension("CHUNKING")
	s.chunking = s.chunking && !rt.NoChunking && !r.opt.noChunking
	if rt.Username == "" {
		return s, nil
	}
	if f := r.auth(s, rt); f != nil {
		s.close()
		return nil, f
	}
	return s, nil
}

// greet brings the connection to the point where MAIL FROM can be sent.
func (r *Relay) greet(s *session, t target, rt *Route) error {
	var conn net.Conn = s.raw
	switch {
	case rt.TLS == None:
		r.opt.Log.Warn("relay: sending in PLAIN TEXT without TLS, as the route's tls = \"none\" setting says", "host", t.host)
	case rt.ImplicitTLS:
		tc, err := r.handshake(s.raw, t, rt)
		if err != nil {
			return err
		}
		conn, s.tls = tc, tlsName(tc)
	default:
		if err := r.plainStartTLS(s.raw, t.host); err != nil {
			return err
		}
		tc, err := r.handshake(s.raw, t, rt)
		if err != nil {
			return err
		}
		// The greeting was read before STARTTLS; go-smtp expects one, so it is given a stand-in.
		conn, s.tls = &greetedConn{Conn: tc, r: io.MultiReader(strings.NewReader("220 "+t.host+" TLS\r\n"), tc)}, tlsName(tc)
	}
	s.conn, s.c = conn, smtp.NewClient(conn)
	s.cmdTimeout, s.dataTimeout = r.opt.CommandTimeout, r.opt.DataTimeout
	s.c.CommandTimeout, s.c.SubmissionTimeout = r.opt.ConnectTimeout, r.opt.DataTimeout
	if err := s.c.Hello(r.opt.Hostname); err != nil {
		return err
	}
	s.c.CommandTimeout = r.opt.CommandTimeout
	return nil
}

// plainStartTLS reads the greeting, says EHLO and STARTTLS in plain text, and checks that the server
// sent nothing more that could be mistaken for protected data (a STARTTLS injection).
func (r *Relay) plainStartTLS(conn net.Conn, host string) error {
	conn.SetDeadline(time.Now().Add(r.opt.ConnectTimeout))
	defer conn.SetDeadline(time.Time{})
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return protoErr(err)
	}
	if err := tp.PrintfLine("EHLO %s", r.opt.Hostname); err != nil {
		return err
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return protoErr(err)
	}
	if !hasExtension(msg, "STARTTLS") {
		return tempf(host, "4.7.10", host+" does not offer STARTTLS, and TLS is required for this destination")
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return protoErr(err)
	}
	if tp.R.Buffered() > 0 {
		return tempf(host, "4.7.0", host+" sent data after its STARTTLS answer (refused as an injection attempt)")
	}
	return nil
}

// handshake runs the TLS handshake now, so a certificate that does not verify is reported as such.
func (r *Relay) handshake(conn net.Conn, t target, rt *Route) (*tls.Conn, error) {
	roots := rt.RootCAs
	if roots == nil {
		roots = r.opt.RootCAs
	}
	tc := tls.Client(conn, &tls.Config{ServerName: t.host, RootCAs: roots, MinVersion: tls.VersionTLS12})
	ctx, cancel := context.WithTimeout(context.Background(), r.opt.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, smtpFailure(t.host, "the TLS handshake", err)
	}
	return tc, nil
}

// auth signs in to a smart host with AUTH PLAIN. A refusal is temporary: the configuration is wrong,
// not the message.
func (r *Relay) auth(s *session, rt *Route) *failure {
	if !s.c.SupportsAuth("PLAIN") {
		return tempf(s.host, "4.7.0", s.host+" does not offer AUTH PLAIN")
	}
	if err := s.c.Auth(sasl.NewPlainClient("", rt.Username, rt.Password)); err != nil {
		f := smtpFailure(s.host, "AUTH", err)
		f.permanent, f.cause = false, ""
		f.status = "4" + f.status[1:]
		return f
	}
	return nil
}

// send transfers one entry: MAIL FROM, RCPT TO, DATA. It returns the server's final answer or why not.
func (s *session) send(c *mailbox.Claimed) (string, *failure) {
	opts, f := s.mailOptions(c)
	if f != nil {
		return "", f
	}
	var answer, step string
	var err error
	switch {
	case s.groupable(c):
		answers, fails := s.sendGroup([]*mailbox.Claimed{c}, []*smtp.MailOptions{opts})
		return answers[0], fails[0]
	case s.pipelining:
		answer, step, err = s.pipelined(c.From, c.Recipient, opts, c.Content)
	default:
		if err := s.c.Mail(c.From, opts); err != nil {
			return "", s.fail("MAIL FROM", err)
		}
		if err := s.c.Rcpt(c.Recipient, nil); err != nil {
			return "", s.fail("RCPT TO", err)
		}
		if s.chunking && canonical(c.Content) {
			answer, step, err = s.chunk(c.Content)
		} else {
			answer, step, err = s.data(c.Content)
		}
	}
	if err != nil {
		return "", s.fail(step, err)
	}
	return answerLine(answer), nil
}

// answerLine is the server's final answer as the queue records it: one line.
func answerLine(answer string) string {
	return "250 " + strings.Join(strings.Fields(answer), " ")
}

// mailOptions checks that the server can take c (its addresses, its size, internationalised
// addresses) and returns the MAIL FROM parameters for it.
func (s *session) mailOptions(c *mailbox.Claimed) (*smtp.MailOptions, *failure) {
	if strings.ContainsAny(c.From+c.Recipient, "\r\n") { // the queue refuses such addresses; never sent
		return nil, permf(mailbox.CauseRejected, "", "5.1.3", "an address of the entry holds a line break")
	}
	if s.maxSize > 0 && len(c.Content) > s.maxSize {
		return nil, permf(mailbox.CauseRejected, s.host, "5.3.4",
			fmt.Sprintf("the message (%d bytes) is larger than %s accepts (%d bytes)", len(c.Content), s.host, s.maxSize))
	}
	opts := &smtp.MailOptions{Size: int64(len(c.Content)), UTF8: !isASCII(c.From + c.Recipient)}
	if ok, _ := s.c.Extension("SMTPUTF8"); opts.UTF8 && !ok {
		return nil, permf(mailbox.CauseRejected, s.host, "5.6.7", s.host+" does not accept internationalised addresses (no SMTPUTF8)")
	}
	return opts, nil
}

// The DATA phase is sent through a textproto.Conn of the relay's own on the session's connection
// instead of go-smtp's DataCommand, whose net/textproto DotWriter handles the data a byte at a time (a
// sixth of cafgate's CPU when relaying 1 MiB copies), and MAIL FROM, RCPT TO and DATA are pipelined
// (RFC 2920) when the server offers it, which go-smtp's client does not do: two round trips per copy
// instead of four.
//
// When the server offers CHUNKING (RFC 3030) and the content is already in canonical form (every line
// ends in CRLF), the content goes as one chunk, "BDAT <size> LAST", instead of DATA: sent as it is, no
// dot-stuffing on either side, and the server reads a counted block instead of looking at every byte
// for the end-of-data line (a receiver's dot reader is the largest cost of taking a 1.4 MB sealed
// copy). Pipelined, MAIL, RCPT and BDAT go in one write (sendGroup, with one or more transactions):
// one round trip. go-smtp's client has no BDAT. This is safe between go-smtp's own calls (EHLO, RSET, QUIT): the server sends
// nothing between its answers and the next command, so go-smtp's reader holds nothing unread, and
// these readers read only up to the end of the final answer, which ends the server's turn.

// data sends DATA, then the content (body), and returns the server's answer.
func (s *session) data(content []byte) (answer, step string, err error) {
	tp := s.dataConn()
	defer s.conn.SetDeadline(time.Time{})
	s.conn.SetDeadline(time.Now().Add(s.cmdTimeout))
	if err := tp.PrintfLine("DATA"); err != nil {
		return "", "DATA", err
	}
	if _, _, err := tp.ReadResponse(354); err != nil {
		return "", "DATA", protoErr(err)
	}
	return s.body(tp, content)
}

// pipelined sends MAIL FROM, RCPT TO and DATA in one write, reads their three answers, and then the
// content (body). A refused MAIL or RCPT is the failure reported; should the server still take DATA,
// an empty message is ended with the dot and its answer ignored, as RFC 2920 section 3.1 requires.
func (s *session) pipelined(from, rcpt string, opts *smtp.MailOptions, content []byte) (answer, step string, err error) {
	tp := s.dataConn()
	defer s.conn.SetDeadline(time.Time{})
	s.conn.SetDeadline(time.Now().Add(s.cmdTimeout))
	fmt.Fprintf(tp.W, "%s\r\nRCPT TO:<%s>\r\nDATA\r\n", s.mailCommand(from, opts), rcpt)
	if err := tp.W.Flush(); err != nil {
		return "", "MAIL FROM", err
	}
	_, dataOK, refusedAt, refusal, err := readAnswers(tp, dataSteps)
	if err != nil {
		return "", refusedAt, err // the connection broke
	}
	if refusal != nil {
		if dataOK { // the server took DATA all the same: an empty message, ended at once
			if _, err := tp.W.WriteString(".\r\n"); err != nil {
				return "", "DATA", err
			}
			if err := tp.W.Flush(); err != nil {
				return "", "DATA", err
			}
			if _, _, err := tp.ReadResponse(0); err != nil {
				if _, answered := err.(*textproto.Error); !answered {
					return "", "DATA", err
				}
			}
		}
		if tp.R.Buffered() > 0 {
			s.broken = true // the server said more than its answers: the session is no longer in step
		}
		return "", refusedAt, refusal
	}
	return s.body(tp, content)
}

// The answers a pipelined transaction expects, one per command, and the step each is reported as.
type answerStep struct {
	step string
	code int // what textproto.ReadResponse expects: 25 is any 25x
}

var (
	dataSteps = []answerStep{{"MAIL FROM", 25}, {"RCPT TO", 25}, {"DATA", 354}}
	bdatSteps = []answerStep{{"MAIL FROM", 25}, {"RCPT TO", 25}, {"the end of the data", 25}}
)

// readAnswers reads one answer for each of steps. The first refusal is the one reported (refusedAt,
// refusal: a *smtp.SMTPError); last is the last step's answer and lastOK whether it was accepted. An
// err is the connection's, and refusedAt then the step it broke at.
func readAnswers(tp *textproto.Conn, steps []answerStep) (last string, lastOK bool, refusedAt string, refusal, err error) {
	for i, c := range steps {
		_, msg, err := tp.ReadResponse(c.code)
		if _, answered := err.(*textproto.Error); err != nil && !answered {
			return "", false, c.step, nil, err
		}
		if err != nil && refusal == nil {
			refusedAt, refusal = c.step, protoErr(err)
		}
		if i == len(steps)-1 {
			last, lastOK = msg, err == nil
		}
	}
	return last, lastOK, refusedAt, refusal, nil
}

// pipelinedAnswers reads the answers to a pipelined MAIL, RCPT and BDAT LAST. The first refusal is
// the one reported; otherwise the answer to BDAT is the server's answer to the content. An error that
// is not a *smtp.SMTPError is the connection's.
func (s *session) pipelinedAnswers(tp *textproto.Conn) (answer, step string, err error) {
	answer, _, step, refusal, err := readAnswers(tp, bdatSteps)
	switch {
	case err != nil:
		return "", step, err
	case refusal != nil:
		return "", step, refusal
	}
	return answer, "", nil
}

// groupable reports whether c can go in a pipelined group of transactions (sendGroup): the server
// offers PIPELINING and CHUNKING, and c's content goes as it is.
func (s *session) groupable(c *mailbox.Claimed) bool {
	return s.pipelining && s.chunking && canonical(c.Content)
}

// The most one group of transactions holds (at least one entry, however large).
const (
	groupMax      = 16
	groupMaxBytes = 1 << 20
)

// sendGroup sends entries in one pipelined group of transactions, each groupable with its MAIL FROM
// parameters from mailOptions in opts: one write for all of them, then their answers in order. RFC 2920
// lets a client pipeline whole transactions (only EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP must
// end a group; BDAT is not among them, RFC 3030 section 4.2); an RSET before each transaction after
// the first closes one that a refusal left open. Each entry gets its own answer or failure; when the
// connection breaks, every entry not yet answered gets that failure (it may have been delivered:
// the documented duplicate, under the same Message-ID, when it is sent again).
func (s *session) sendGroup(cs []*mailbox.Claimed, opts []*smtp.MailOptions) (answers []string, fails []*failure) {
	answers, fails = make([]string, len(cs)), make([]*failure, len(cs))
	tp := s.dataConn()
	defer s.conn.SetDeadline(time.Time{})
	s.conn.SetDeadline(time.Now().Add(s.dataTimeout))
	for i, c := range cs {
		if i > 0 {
			tp.W.WriteString("RSET\r\n")
		}
		fmt.Fprintf(tp.W, "%s\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n", s.mailCommand(c.From, opts[i]), c.Recipient, len(c.Content))
		tp.W.Write(c.Content)
	}
	if err := tp.W.Flush(); err != nil {
		// The server may have answered some before the connection broke: read what it said.
		s.broken = true
		s.conn.SetDeadline(time.Now().Add(time.Second))
	}
	brokeAt := func(i int, step string, err error) ([]string, []*failure) {
		s.broken = true
		for j := i; j < len(cs); j++ {
			fails[j] = smtpFailure(s.host, step, err)
		}
		return answers, fails
	}
	for i := range cs {
		if i > 0 {
			if _, _, err := tp.ReadResponse(250); err != nil {
				if _, answered := err.(*textproto.Error); answered {
					err = fmt.Errorf("the server refused RSET between transactions: %v", err)
				}
				return brokeAt(i, "RSET", err)
			}
		}
		answer, step, err := s.pipelinedAnswers(tp)
		if _, refused := err.(*smtp.SMTPError); err != nil && !refused {
			return brokeAt(i, step, err)
		}
		if err != nil {
			fails[i] = smtpFailure(s.host, step, err)
			continue
		}
		answers[i] = answerLine(answer)
	}
	if tp.R.Buffered() > 0 {
		s.broken = true // the server said more than its answers: the session is no longer in step
	}
	if fails[len(cs)-1] != nil && !s.broken && s.c.Reset() != nil { // the last refusal's transaction
		s.broken = true
	}
	return answers, fails
}

// chunk sends content as one BDAT LAST chunk (MAIL and RCPT already answered) and returns the
// server's answer.
func (s *session) chunk(content []byte) (answer, step string, err error) {
	tp := s.dataConn()
	defer s.conn.SetDeadline(time.Time{})
	s.conn.SetDeadline(time.Now().Add(s.dataTimeout))
	fmt.Fprintf(tp.W, "BDAT %d LAST\r\n", len(content))
	tp.W.Write(content)
	return s.endOfData(tp)
}

// canonical reports whether content can go in a BDAT chunk as it is: not empty, every line break a
// CRLF, and ending in one. Anything else goes through DATA, whose writer mends it.
func canonical(content []byte) bool {
	return bytes.HasSuffix(content, []byte("\r\n")) &&
		bytes.Count(content, []byte("\n")) == bytes.Count(content, []byte("\r\n"))
}

// mailCommand is the MAIL FROM command go-smtp's Client.Mail would send for opts.
func (s *session) mailCommand(from string, opts *smtp.MailOptions) string {
	cmd := "MAIL FROM:<" + from + ">"
	if ok, _ := s.c.Extension("8BITMIME"); ok {
		cmd += " BODY=8BITMIME"
	}
	if ok, _ := s.c.Extension("SIZE"); ok && opts.Size != 0 {
		cmd += fmt.Sprintf(" SIZE=%d", opts.Size)
	}
	if opts.UTF8 {
		cmd += " SMTPUTF8"
	}
	return cmd
}

// body sends content dot-stuffed a line at a time and the final dot, and returns the server's answer.
func (s *session) body(tp *textproto.Conn, content []byte) (answer, step string, err error) {
	s.conn.SetDeadline(time.Now().Add(s.dataTimeout))
	if err := writeDotStuffed(tp.W, content); err != nil {
		return "", "the message data", err
	}
	return s.endOfData(tp)
}

// endOfData sends what is written of the content and returns the server's answer to it.
func (s *session) endOfData(tp *textproto.Conn) (answer, step string, err error) {
	if err := tp.W.Flush(); err != nil {
		return "", "the message data", err
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return "", "the end of the data", protoErr(err)
	}
	if tp.R.Buffered() > 0 {
		s.broken = true // the server said more than its answer: the session is no longer in step
	}
	return msg, "", nil
}

// writeDotStuffed writes content as SMTP data lines (RFC 5321 4.5.2): every line ends in CRLF (a bare
// LF becomes CRLF, as net/textproto's DotWriter does), a line starting with "." gets another, and
// content not ending in a line break is ended with one; then the final ".". The runs that need no
// change go to w whole: a sealed copy (base64 lines, CRLF) is one write, not one per line.
func writeDotStuffed(w *bufio.Writer, content []byte) error {
	start := 0 // content[start:] is not written yet
	if len(content) > 0 && content[0] == '.' {
		w.WriteByte('.')
	}
	pos := 0 // just after the last LF seen
	for {
		i := bytes.IndexByte(content[pos:], '\n')
		if i < 0 {
			break
		}
		lf := pos + i
		if lf == 0 || content[lf-1] != '\r' { // a bare LF: CRLF instead
			w.Write(content[start:lf])
			w.WriteString("\r\n")
			start = lf + 1
		}
		pos = lf + 1
		if pos < len(content) && content[pos] == '.' {
			w.Write(content[start:pos])
			w.WriteByte('.')
			start = pos
		}
	}
	w.Write(content[start:pos])
	if last := content[pos:]; len(last) > 0 { // a last line without its line break
		w.Write(bytes.TrimSuffix(last, []byte("\r")))
		w.WriteString("\r\n")
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// fail classifies err and leaves the session ready for the next transaction, or marks it broken.
func (s *session) fail(step string, err error) *failure {
	f := smtpFailure(s.host, step, err)
	if _, ok := err.(*smtp.SMTPError); !ok || s.c.Reset() != nil {
		s.broken = true
	}
	return f
}

// close says QUIT when the connection is still sound, then closes it.
func (s *session) close() {
	if s == nil {
		return
	}
	if !s.broken && s.c != nil {
		s.raw.SetDeadline(time.Now().Add(5 * time.Second))
		s.c.Quit()
	}
	s.raw.Close()
}

// greetedConn hands go-smtp a greeting line before the TLS stream.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(b []byte) (int, error) { return g.r.Read(b) }

// protoErr turns a textproto reply error into the *smtp.SMTPError go-smtp's own calls return.
func protoErr(err error) error {
	te, ok := err.(*textproto.Error)
	if !ok {
		return err
	}
	se := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	if code, rest, ok := strings.Cut(te.Msg, " "); ok {
		var a, b, c int
		if n, _ := fmt.Sscanf(code, "%d.%d.%d", &a, &b, &c); n == 3 {
			se.EnhancedCode, se.Message = smtp.EnhancedCode{a, b, c}, rest
		}
	}
	return se
}

func hasExtension(ehlo, name string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

func tlsName(tc *tls.Conn) string {
	return strings.ReplaceAll(tls.VersionName(tc.ConnectionState().Version), " ", "")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
