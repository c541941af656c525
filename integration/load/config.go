package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is everything one load run needs, parsed from the command line.
type config struct {
	addr       string
	startTLS   bool
	caFile     string
	serverName string
	user       string
	pass       string
	from       string
	to         []string
	size       int
	conns      int
	duration   time.Duration
	messages   int
	json       bool
	timeout    time.Duration
	label      string
	sources    int
	episode    string
	rcpts      int // with -dev: how many recipients to pick
}

// parseFlags reads args (without the program name) into a config and checks it.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var auth, to, size, dev string
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "", "server HOST:PORT (required)")
	fs.BoolVar(&c.startTLS, "starttls", false, "issue STARTTLS before anything else and require it")
	fs.StringVar(&c.caFile, "ca", "", "PEM file of the CA that signs the server certificate (default: system roots)")
	fs.StringVar(&c.serverName, "servername", "", "name to verify in the server certificate (default: host of -addr)")
	fs.StringVar(&auth, "auth", "", "AUTH PLAIN credentials user:pass (or set LOAD_AUTH, ignored with -dev)")
	fs.StringVar(&c.from, "from", "", "envelope sender and From: header (required)")
	fs.StringVar(&to, "to", "", "comma-separated recipients (required)")
	fs.StringVar(&size, "size", "10KiB", "message size: N, NKiB, NMiB")
	fs.IntVar(&c.conns, "conns", 1, "concurrent connections, each reusing its session")
	fs.DurationVar(&c.duration, "duration", 0, "measure for this long (default 20s unless -messages)")
	fs.IntVar(&c.messages, "messages", 0, "send exactly this many messages in total instead of -duration")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "per-command and per-submission timeout")
	fs.StringVar(&c.episode, "episode", "", "episode reference put in the Subject as [REF] (cafgate refuses a package without one)")
	fs.IntVar(&c.sources, "sources", 1, "spread connections over this many loopback source addresses 127.0.0.1, .2, ... (for per-address limits)")
	fs.StringVar(&c.label, "label", "", "free text copied into the result (e.g. server name)")
	fs.IntVar(&c.rcpts, "rcpts", 1, "with -dev and no -to: this many distinct recipients from the episode's team; more than one picks only practitioners with an S/MIME certificate")
	fs.StringVar(&dev, "dev", "", "cafgate dev's dev.json: fills -addr, -starttls, -ca, -servername, -auth, -from, -to, -episode not given")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if auth == "" && dev == "" {
		auth = os.Getenv("LOAD_AUTH") // with -dev, the account comes from dev.json unless -auth says otherwise
	}
	var err error
	if c.user, c.pass, err = parseAuth(auth); err != nil {
		return c, err
	}
	if c.size, err = parseSize(size); err != nil {
		return c, err
	}
	c.to = splitList(to)
	if dev != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		set["auth"] = auth != ""
		if err := applyDev(&c, dev, set); err != nil {
			return c, err
		}
	}
	return c, c.check()
}

// check reports the first missing or inconsistent setting.
func (c *config) check() error {
	switch {
	case c.addr == "":
		return errors.New("-addr is required")
	case c.from == "":
		return errors.New("-from is required")
	case len(c.to) == 0:
		return errors.New("-to is required")
	case c.conns < 1:
		return errors.New("-conns must be at least 1")
	case c.duration < 0 || c.messages < 0:
		return errors.New("-duration and -messages must not be negative")
	case c.duration > 0 && c.messages > 0:
		return errors.New("give -duration or -messages, not both")
	case c.user != "" && !c.startTLS:
		return errors.New("-auth needs -starttls: credentials are never sent in clear")
	}
	if c.duration == 0 && c.messages == 0 {
		c.duration = 20 * time.Second
	}
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if c.sources < 1 || c.sources > 254 {
		return errors.New("-sources must be 1 to 254")
	}
	if ip := net.ParseIP(host); c.sources > 1 && (ip == nil || ip.To4() == nil || !ip.IsLoopback()) {
		return errors.New("-sources needs an IPv4 loopback -addr")
	}
	return nil
}

// localAddr is the source address of connection i: with -sources N, 127.0.0.(1 + i mod N); nil (any)
// with one source.
func (c *config) localAddr(i int) net.Addr {
	if c.sources <= 1 {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%c.sources))}
}

// parseAuth splits "user:pass" at the first colon; "" means no AUTH.
func parseAuth(s string) (user, pass string, err error) {
	if s == "" {
		return "", "", nil
	}
	user, pass, ok := strings.Cut(s, ":")
	if !ok || user == "" || pass == "" {
		return "", "", errors.New("-auth must be user:pass")
	}
	return user, pass, nil
}

// parseSize accepts a byte count with an optional binary suffix: 512, 10KiB, 1MiB (K and M mean the same).
func parseSize(s string) (int, error) {
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}}
	num, mult := s, 1
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("-size %q: want N, NKiB or NMiB", s)
	}
	if n*mult < minMessageSize {
		return 0, fmt.Errorf("-size %q: at least %d bytes (headers)", s, minMessageSize)
	}
	return n * mult, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tlsConfig builds the client TLS settings: the CA from -ca (or system roots) and the name to verify.
func (c *config) tlsConfig() (*tls.Config, error) {
	name := c.serverName
	if name == "" {
		host, _, _ := net.SplitHostPort(c.addr)
		name = host
	}
	tc := &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12}
	if c.caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", c.caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}
