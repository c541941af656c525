// Command sink is the delivery benchmark's relay sink: an SMTP server on loopback that answers 250 to
// everything, discards the data, and counts recipients delivered (one per RCPT of every transaction
// whose DATA ended in 250). The same sink receives from cafgate's relay and from Postfix's smtp client.
//
//	go run ./integration/bench/sink -addr 127.0.0.1:0 -ready FILE -expect N [-timeout 10m]
//
// It writes its listen address to -ready once listening, and exits when -expect recipients have been
// delivered (or -timeout passes, exit status 1), printing one JSON object: recipients and messages
// counted, and the times (Unix seconds, nanosecond resolution) of the first and last DATA answered 250.
// With -expect 0 it runs until SIGINT/SIGTERM and prints the same object then. -expect-file names a
// file the count may be written to later (by a script that learns how many were accepted only after
// the sink started); it is read every 50 ms until it holds a number.
//
// Mail with a null reverse path (MAIL FROM:<>: delivery status notifications, cafgate's delivery
// reports to senders) is answered 250 too but not counted as delivered recipients; it is counted apart
// as null_sender.
// Plain text only, no AUTH: it is a benchmark peer on 127.0.0.1, never a mail server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

type counter struct {
	mu          sync.Mutex
	recipients  int
	messages    int
	first, last time.Time
	expect      int
	nullSender  int
	done        chan struct{}
}

func (c *counter) setExpect(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expect = n
	c.check()
}

func (c *counter) check() {
	if c.expect > 0 && c.recipients >= c.expect {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
}

func (c *counter) add(rcpts int, null bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if null {
		c.nullSender++
		return
	}
	if c.messages == 0 {
		c.first = now
	}
	c.messages++
	c.recipients += rcpts
	c.last = now
	c.check()
}

type result struct {
	Recipients int     `json:"recipients"`
	Messages   int     `json:"messages"`
	First      float64 `json:"first"`
	Last       float64 `json:"last"`
	Complete   bool    `json:"complete"`
	NullSender int     `json:"null_sender"`
	Expected   int     `json:"expected"`
}

func (c *counter) result() result {
	c.mu.Lock()
	defer c.mu.Unlock()
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	return result{c.recipients, c.messages, unix(c.first), unix(c.last), c.expect > 0 && c.recipients >= c.expect, c.nullSender, c.expect}
}

type backend struct{ c *counter }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{c: b.c}, nil }

type session struct {
	c     *counter
	rcpts int
	null  bool
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.rcpts, s.null = 0, from == ""
	return nil
}
func (s *session) Rcpt(string, *smtp.RcptOptions) error { s.rcpts++; return nil }
func (s *session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.c.add(s.rcpts, s.null)
	s.rcpts = 0
	return nil
}
func (s *session) Reset()        { s.rcpts = 0 }
func (s *session) Logout() error { return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	ready := fs.String("ready", "", "file to write the listen address to once listening")
	expect := fs.Int("expect", 0, "exit after this many recipients are delivered (0: run until a signal)")
	expectFile := fs.String("expect-file", "", "file the expected recipient count is written to later (overrides -expect once it holds a number)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long (exit status 1)")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if h, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(h).IsLoopback() {
		return fmt.Errorf("-addr %q: must be a loopback host:port", *addr)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	c := &counter{expect: *expect, done: make(chan struct{})}
	srv := smtp.NewServer(backend{c})
	srv.Domain = "sink.localhost"
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Minute, time.Minute
	srv.ErrorLog = quiet{}
	go srv.Serve(l)
	if *expectFile != "" {
		go func() {
			for {
				var n int
				if b, err := os.ReadFile(*expectFile); err == nil {
					if _, err := fmt.Sscan(string(b), &n); err == nil && n > 0 {
						c.setExpect(n)
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	if *ready != "" {
		if err := os.WriteFile(*ready+".tmp", []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*ready+".tmp", *ready); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var failure error
	select {
	case <-c.done:
	case <-ctx.Done():
		if c.result().Expected > 0 {
			failure = errors.New("stopped before every expected recipient was delivered")
		}
	case <-time.After(*timeout):
		failure = fmt.Errorf("timed out after %v", *timeout)
	}
	res := c.result()
	srv.Close()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return err
	}
	if failure != nil {
		return fmt.Errorf("%w (%d of %d recipients)", failure, res.Recipients, res.Expected)
	}
	return nil
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Println(...any)        {}
