package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"cafgate/gateway/fault"
	"cafgate/gateway/intake"
)

// lineGuard is the connection go-smtp reads and writes. It sits above any TLS layer, so it sees the
// plain SMTP stream on both ports and after STARTTLS, and it does three things go-smtp does not:
//
//   - it refuses a command line (or AUTH response line) holding a bare LF, a bare CR or a NUL with
//     "500 5.5.2" and closes the connection (SMTP smuggling, CVE-2023-51764 class); go-smtp's
//     net/textproto would take a bare LF as a line end;
//   - it terminates TLS itself: on port 465 from the first byte, on port 587 at STARTTLS, which it
//     answers in place of go-smtp. Input pipelined after STARTTLS is discarded (CVE-2011-0411 class)
//     and the TLS connection is served afresh by the server's TLS instance of go-smtp, so nothing
//     said before TLS survives it (RFC 3207);
//   - it bounds what go-smtp discards after the session has refused a message (for size or memory):
//     go-smtp reads the rest of DATA to its end before replying, however long; past MaxDrainBytes the
//     guard sends the refusal itself and closes the connection.
//
// To tell command lines from message data it hands go-smtp at most one command line per Read, so
// go-smtp has answered each line before it asks for the next, and it watches the replies: after a
// "354" it passes DATA through to the end-of-data line (tracked with the same state machine as
// go-smtp's data reader), after "334" the line is an AUTH response, and after a BDAT command it
// passes the chunk's bytes. go-smtp writes each reply with one flush, from the goroutine that reads.
type lineGuard struct {
	net.Conn // the transport: a *tls.Conn, or the plain admitted connection before STARTTLS
	srv      *Server
	via      string
	tc       *tls.Conn // the TLS layer, nil before STARTTLS
	br       *bufio.Reader

	hsOnce sync.Once
	hsErr  error

	// Read side, used only by the goroutine that reads.
	mode      int
	pending   []byte // the rest of a line go-smtp's buffer did not take
	lineStart bool   // the next byte read begins a command line
	prevCR    bool   // the last byte of a partial line was CR
	saslLine  bool   // the line being read answers a 334 challenge
	dataState int    // go-smtp's data reader state, mirrored
	lineLen   int    // bytes of the current message line so far
	chunkLeft int64  // bytes of the BDAT chunk still to pass
	seen      uint64 // replies counted when the mode was last decided

	mu       sync.Mutex      // guards the write side and the drain limit
	replies  uint64          // reply lines written
	lastCode int             // code of the last reply line written
	wStart   bool            // the next byte written begins a reply line
	wCode    []byte          // digits of the reply line being written
	swallow  bool            // drop the next reply line: go-smtp's greeting after STARTTLS
	drainRep *smtp.SMTPError // the session's refusal of the message being received

	done atomic.Bool // refused or handed over: reads end, Close leaves the transport alone after handover
	gone atomic.Bool // handed over to the TLS instance
}

const (
	modeLine = iota
	modeData
	modeChunk
)

// The states of go-smtp's data reader (data.go), mirrored so DATA ends here exactly where it ends there.
const (
	dsBeginLine = iota
	dsDot
	dsDotCR
	dsCR
	dsData
	dsEOF
)

func (s *Server) newGuard(c net.Conn, via string, tc *tls.Conn, afterSTARTTLS bool) *lineGuard {
	size := max(16<<10, s.opt.MaxLineLength+2) // one TLS record
	return &lineGuard{
		Conn: c, srv: s, via: via, tc: tc, br: bufio.NewReaderSize(c, size),
		lineStart: true, wStart: true, swallow: afterSTARTTLS,
	}
}

func (g *lineGuard) client() intake.Client {
	return intake.Client{RemoteAddr: g.RemoteAddr().String(), Via: g.via, TLS: g.tc != nil}
}

// handshake runs the TLS handshake once, bounded by ReadTimeout, before the first read or write.
func (g *lineGuard) handshake() error {
	if g.tc == nil {
		return nil
	}
	g.hsOnce.Do(func() {
		_ = g.tc.SetDeadline(time.Now().Add(g.srv.opt.ReadTimeout))
		ctx, cancel := context.WithTimeout(g.srv.ctx, g.srv.opt.ReadTimeout)
		defer cancel()
		g.hsErr = g.tc.HandshakeContext(ctx)
		_ = g.tc.SetDeadline(time.Time{})
		_ = g.tc.SetWriteDeadline(time.Now().Add(g.srv.opt.WriteTimeout))
	})
	return g.hsErr
}

// Write passes go-smtp's replies on and notes the code of each reply line.
func (g *lineGuard) Write(p []byte) (int, error) {
	if err := g.handshake(); err != nil {
		return 0, err
	}
	g.mu.Lock()
	out := p
	if g.swallow {
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			g.swallow = false
			out = p[i+1:]
		} else {
			out = nil
		}
	}
	g.track(out)
	g.mu.Unlock()
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := g.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (g *lineGuard) track(p []byte) {
	for _, c := range p {
		if g.wStart {
			g.wStart, g.wCode = false, g.wCode[:0]
		}
		if len(g.wCode) < 3 {
			g.wCode = append(g.wCode, c)
			if len(g.wCode) == 3 {
				g.replies++
				g.lastCode, _ = strconv.Atoi(string(g.wCode))
			}
		}
		if c == '\n' {
			g.wStart = true
		}
	}
}

// Close closes the transport, unless it has been handed to the TLS instance after STARTTLS.
func (g *lineGuard) Close() error {
	if g.gone.Load() {
		return nil
	}
	return g.Conn.Close()
}

// Read gives go-smtp one command line, or DATA up to its end, or the rest of a BDAT chunk.
func (g *lineGuard) Read(b []byte) (int, error) {
	if g.done.Load() {
		return 0, io.EOF
	}
	if err := g.handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if g.mode == modeLine && g.lineStart && len(g.pending) == 0 {
		g.mu.Lock()
		fresh, code := g.replies != g.seen, g.lastCode
		g.seen = g.replies
		g.mu.Unlock()
		g.saslLine = false
		if fresh {
			switch code {
			case 354:
				g.mode, g.dataState = modeData, dsBeginLine
			case 334:
				g.saslLine = true
			}
		}
	}
	switch g.mode {
	case modeData:
		return g.readData(b)
	case modeChunk:
		return g.readChunk(b)
	}
	return g.readLine(b)
}

func (g *lineGuard) readLine(b []byte) (int, error) {
	for len(g.pending) == 0 {
		line, err := g.br.ReadSlice('\n')
		if len(line) == 0 {
			return 0, err
		}
		complete := err == nil
		if what := g.badLine(line); what != "" {
			return g.refuseLine(what)
		}
		start := g.lineStart
		g.lineStart = complete
		if !complete || !start || g.saslLine {
			g.pending = line
			break
		}
		cmd, arg := parseLine(line)
		switch {
		case cmd == "STARTTLS" && g.tc == nil:
			return g.startTLS()
		case cmd == "STARTTLS":
			g.answer(502, smtp.EnhancedCode{5, 5, 1}, "TLS is already running on this connection.")
			continue
		case cmd == "BDAT":
			if n, ok := bdatSize(arg); ok {
				if n > g.srv.opt.MaxMessageBytes+g.srv.opt.MaxDrainBytes {
					return g.refuseTooBigChunk(n) // never read a chunk that cannot fit
				}
				if n > 0 {
					g.mode, g.chunkLeft = modeChunk, n
				}
			}
		}
		g.pending = line
	}
	n := copy(b, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

// badLine names what is wrong with a piece of a command line: a LF not after CR, a CR not before
// LF, or a NUL. A piece may end in CR when the line goes on in the next piece.
func (g *lineGuard) badLine(p []byte) string {
	for i, c := range p {
		switch c {
		case '\n':
			if !(i > 0 && p[i-1] == '\r') && !(i == 0 && g.prevCR) {
				return "a bare LF (a line feed without the carriage return before it)"
			}
		case '\r':
			if i+1 < len(p) && p[i+1] != '\n' {
				return "a bare CR (a carriage return without the line feed after it)"
			}
		case 0:
			return "a NUL byte"
		}
	}
	g.prevCR = len(p) > 0 && p[len(p)-1] == '\r'
	return ""
}

// parseLine names the command of a complete line as go-smtp's parseCmd does (parse.go).
func parseLine(line []byte) (cmd, arg string) {
	l := strings.TrimRight(string(line), "\r\n")
	switch {
	case strings.HasPrefix(strings.ToUpper(l), "STARTTLS"):
		return "STARTTLS", ""
	case len(l) == 4:
		return strings.ToUpper(l), ""
	case len(l) > 5 && l[4] == ' ':
		return strings.ToUpper(l[:4]), strings.TrimSpace(l[5:])
	}
	return "", ""
}

// bdatSize returns the chunk size of a BDAT command when go-smtp will read the chunk: exactly when its
// arguments parse (conn.go, handleBdat), whether the command is then refused or not.
func bdatSize(arg string) (int64, bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || (len(f) == 2 && !strings.EqualFold(f[1], "LAST")) {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

// body returns the reader for the message of a DATA command when go-smtp has just answered it with
// 354, else nil (BDAT, whose chunks go-smtp feeds through a pipe). It reads the raw stream itself,
// unstuffing dots as go-smtp's data reader does but a line at a time rather than a byte at a time, and
// stops at the end-of-data line. go-smtp's own data reader is then given only that line (see
// readData). Called from go-smtp's goroutine for DATA, from a goroutine of its own for BDAT.
func (g *lineGuard) body() io.Reader {
	g.mu.Lock()
	fresh := g.replies != g.seen && g.lastCode == 354
	if fresh {
		g.seen = g.replies
	}
	g.mu.Unlock()
	if !fresh {
		return nil
	}
	// Only DATA gets here, on go-smtp's goroutine, before go-smtp's first read of the data.
	g.mode, g.dataState, g.lineLen = modeData, dsBeginLine, 0
	return dataBody{g}
}

type dataBody struct{ g *lineGuard }

// endOfData is the only DATA go-smtp's own data reader is given.
var endOfData = []byte(".\r\n")

func (d dataBody) Read(p []byte) (int, error) {
	g := d.g
	for {
		if g.dataState == dsEOF {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if _, err := g.br.Peek(1); err != nil {
			return 0, unexpectedEOF(err) // the connection ended inside DATA: never the end of a message
		}
		buf, _ := g.br.Peek(g.br.Buffered())
		in, out := g.unstuff(p, buf)
		long := g.longLine(buf[:in])
		_, _ = g.br.Discard(in)
		if long {
			return 0, smtp.ErrTooLongLine // the session refuses the message; readData drains the rest
		}
		if out > 0 || g.dataState == dsEOF {
			return out, nil
		}
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// longLine follows the length of the current message line through raw (CR LF included) and reports a
// line longer than MaxLineLength, as go-smtp's line limit does for the data it reads.
func (g *lineGuard) longLine(raw []byte) bool {
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			g.lineLen += len(raw)
			return g.lineLen > g.srv.opt.MaxLineLength
		}
		if g.lineLen+i+1 > g.srv.opt.MaxLineLength {
			return true
		}
		g.lineLen, raw = 0, raw[i+1:]
	}
	return false
}

// unstuff runs src through go-smtp's data reader state machine (data.go), writing what that reader
// would return to dst, until dst is full, src is used up or the end-of-data line has been read. It
// returns the bytes taken from src and written to dst. A nil dst discards.
func (g *lineGuard) unstuff(dst, src []byte) (in, out int) {
	room := func() bool { return dst == nil || out < len(dst) }
	emit := func(c byte) {
		if dst != nil {
			dst[out] = c
		}
		out++
	}
	for in < len(src) && room() && g.dataState != dsEOF {
		if g.dataState == dsData {
			// The bulk of a message: everything up to the next CR is passed as it is.
			end := len(src)
			if dst != nil {
				end = min(end, in+len(dst)-out)
			}
			seg := src[in:end]
			i := bytes.IndexByte(seg, '\r')
			if i >= 0 {
				seg = seg[:i+1]
				g.dataState = dsCR
			}
			if dst != nil {
				copy(dst[out:], seg)
			}
			in += len(seg)
			out += len(seg)
			continue
		}
		c := src[in]
		in++
		switch g.dataState {
		case dsBeginLine:
			switch c {
			case '.':
				g.dataState = dsDot
				continue
			case '\r':
				g.dataState = dsCR
			default:
				g.dataState = dsData
			}
		case dsDot:
			if c == '\r' {
				g.dataState = dsDotCR
				continue
			}
			g.dataState = dsData
		case dsDotCR:
			if c == '\n' {
				g.dataState = dsEOF
				continue
			}
			g.dataState = dsData
		case dsCR:
			g.dataState = dsData
			if c == '\n' {
				g.dataState = dsBeginLine
			}
		}
		emit(c)
	}
	return in, out
}

// readData is go-smtp's read of DATA: after the session has read the message (or given up on it),
// go-smtp reads to the end-of-data line before it replies. The guard discards what the session left,
// at most MaxDrainBytes of it (past that it sends the session's refusal itself and closes the
// connection), and then gives go-smtp's data reader only the end-of-data line.
func (g *lineGuard) readData(b []byte) (int, error) {
	var discarded int64
	for g.dataState != dsEOF {
		if _, err := g.br.Peek(1); err != nil {
			return 0, unexpectedEOF(err)
		}
		buf, _ := g.br.Peek(g.br.Buffered())
		in, _ := g.unstuff(nil, buf)
		_, _ = g.br.Discard(in)
		discarded += int64(in)
		if discarded > g.srv.opt.MaxDrainBytes {
			return 0, g.drainedTooMuch()
		}
		if g.dataState != dsEOF {
			_ = g.Conn.SetReadDeadline(time.Now().Add(g.srv.opt.ReadTimeout))
		}
	}
	g.mu.Lock()
	g.drainRep = nil
	g.mu.Unlock()
	g.mode, g.lineStart, g.prevCR = modeLine, true, false
	g.pending = endOfData // never appended to: pending may alias the read buffer
	return g.readLine(b)
}

func (g *lineGuard) readChunk(b []byte) (int, error) {
	if int64(len(b)) > g.chunkLeft {
		b = b[:g.chunkLeft]
	}
	n, err := g.br.Read(b)
	// A chunk cut short is not a chunk: go-smtp's io.Copy would take io.EOF as its end and, after
	// BDAT ... LAST, pass the truncated message on as complete.
	err = unexpectedEOF(err)
	g.chunkLeft -= int64(n)
	if g.chunkLeft == 0 {
		g.mode, g.lineStart, g.prevCR = modeLine, true, false
	}
	return n, err
}

// drainAfter is called by the session when it refuses the message being received: it is the reply
// the guard sends if the client sends more than MaxDrainBytes after that point.
func (g *lineGuard) drainAfter(rep *smtp.SMTPError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.drainRep = rep
}

func (g *lineGuard) drainedTooMuch() error {
	g.mu.Lock()
	rep := g.drainRep
	g.mu.Unlock()
	if rep == nil {
		rep = g.srv.refuse(fault.TooBig, "", fmt.Errorf("more than %d bytes of a refused message", g.srv.opt.MaxDrainBytes), g.client(), "data")
	}
	g.srv.log.Info("closing connection after refused message", "via", g.via, "remote", g.RemoteAddr().String(),
		"discarded_limit", g.srv.opt.MaxDrainBytes)
	g.answer(rep.Code, rep.EnhancedCode, rep.Message)
	g.end()
	return net.ErrClosed
}

func (g *lineGuard) refuseLine(what string) (int, error) {
	msg := "A command line held " + what + "; commands must end with CR LF and hold neither. The connection is closed."
	rep := g.srv.refuse(fault.BadCommand, msg, errBareLine, g.client(), "command")
	g.answer(500, smtp.EnhancedCode{5, 5, 2}, rep.Message)
	g.end()
	return 0, io.EOF
}

func (g *lineGuard) refuseTooBigChunk(n int64) (int, error) {
	rep := g.srv.refuse(fault.TooBig, fmt.Sprintf("The message is larger than the gateway accepts (%d bytes at most); the connection is closed.", g.srv.opt.MaxMessageBytes),
		fmt.Errorf("BDAT chunk of %d bytes over %d", n, g.srv.opt.MaxMessageBytes), g.client(), "data")
	g.answer(rep.Code, rep.EnhancedCode, rep.Message)
	g.end()
	return 0, io.EOF
}

var errBareLine = errors.New("bare CR, bare LF or NUL in a command line")

// answer writes a reply of the guard's own, outside go-smtp (which is waiting in Read, its replies
// flushed).
func (g *lineGuard) answer(code int, ec smtp.EnhancedCode, msg string) {
	_ = g.Conn.SetWriteDeadline(time.Now().Add(g.srv.opt.WriteTimeout))
	_, _ = fmt.Fprintf(g.Conn, "%d %d.%d.%d %s\r\n", code, ec[0], ec[1], ec[2], oneLine(msg))
}

func (g *lineGuard) end() {
	g.done.Store(true)
	_ = g.Conn.Close()
}

// startTLS answers STARTTLS, drops whatever the client sent after it, and hands the connection under
// TLS to the server's TLS instance of go-smtp; this instance of go-smtp reads EOF and ends its session.
func (g *lineGuard) startTLS() (int, error) {
	g.br = nil // input pipelined after STARTTLS is never read as a command
	g.answer(220, smtp.EnhancedCode{2, 0, 0}, "Ready to start TLS")
	tc := tls.Server(g.Conn, g.srv.opt.TLSConfig)
	ng := g.srv.newGuard(tc, g.via, tc, true)
	g.gone.Store(true)
	g.done.Store(true)
	if !g.srv.handoff.give(ng) {
		_ = tc.Close()
	}
	return 0, io.EOF
}

// handoffListener feeds connections upgraded by STARTTLS to the TLS instance of go-smtp.
type handoffListener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: &net.TCPAddr{}}
}

func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
