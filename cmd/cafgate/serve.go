package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cafgate/certs/validate"
	"cafgate/configs"
	"cafgate/directory"
	"cafgate/directory/ldif"
	"cafgate/gateway/api"
	"cafgate/gateway/autoconfig"
	"cafgate/gateway/deliver"
	"cafgate/gateway/httpd"
	"cafgate/gateway/imapd"
	"cafgate/gateway/intake"
	"cafgate/gateway/notify"
	"cafgate/gateway/pickup"
	"cafgate/gateway/relay"
	"cafgate/gateway/smtpd"
	"cafgate/mailbox"
)

func runServe(c *cli, fs *flag.FlagSet, _ []string) error {
	cfg, err := configs.Load(flagString(fs, "config"))
	if err != nil {
		return err
	}
	return serve(cfg, c.err, nil, nil)
}

// serve runs the gateway until SIGINT or SIGTERM. listeners may hold already-bound listeners by role
// ("submission", "submissions", "https"); ready, when set, is called once every listener is bound, and
// an error from it stops the gateway.
func serve(cfg *configs.Config, logOut io.Writer, listeners map[string]net.Listener, ready func(*gw) error) error {
	log := newLogger(cfg.Log, logOut)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	gcDefaults()
	mallocDefaults()
	stopDebug, err := startDebug(log)
	if err != nil {
		return err
	}
	defer stopDebug()
	g, err := start(ctx, cfg, log, listeners)
	if err != nil {
		return err
	}
	if ready != nil {
		if err := ready(g); err != nil {
			g.shutdown(log)
			return err
		}
	}
	log.Info("cafgate started", "version", version, "listen", g.addrs)
	select {
	case <-ctx.Done():
		log.Info("cafgate stopping", "reason", "signal")
	case err = <-g.failed:
		log.Error("cafgate stopping", "reason", "listener failed", "err", err)
	}
	g.shutdown(log)
	return err
}

func newLogger(lc configs.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(lc.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if lc.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// gw is the running gateway: its parts and its listeners.
type gw struct {
	store        *mailbox.Store
	relay        *relay.Relay
	stopRelay    context.CancelFunc
	relayDone    chan struct{}
	dir          directory.Directory
	key          []byte // the content key
	imap         *imapd.Server
	pipeline     *deliver.Pipeline
	builder      *deliver.Builder // builds the queued package copies for the relay, with the pipeline's packages
	stopPipeline context.CancelFunc
	pipelineDone chan struct{}
	identity     *gatewayIdentity    // the gateway's S/MIME certificate and key; nil when not configured
	validator    *validate.Validator // certificate checks for signers and recipients
	smtp         *smtpd.Server
	web          *httpd.Server
	apiWeb       *httpd.Server // the API's own listener (api.listen); nil when the API is on web
	admin        *adminServer
	addrs        map[string]string
	failed       chan error
}

func start(ctx context.Context, cfg *configs.Config, log *slog.Logger, ls map[string]net.Listener) (g *gw, err error) {
	if ls == nil {
		ls = map[string]net.Listener{}
	}
	defer func() {
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
		}
	}()
	tlsConf, err := loadTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	dir, err := openDirectories(cfg.Directories, log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	key, err := mailbox.LoadOrCreateKey(cfg.Store.ContentKeyFile)
	if err != nil {
		return nil, fmt.Errorf("content key: %w", err)
	}
	store, err := mailbox.Open(ctx, mailbox.Options{Path: cfg.Store.Database, ContentKey: key,
		MaxBatch: cfg.Store.MaxBatch, MaxDelay: cfg.Store.MaxDelay.D(), Log: log.With("part", "store"), Ledger: ledgerOptions(cfg)})
	if err != nil {
		return nil, fmt.Errorf("store of record: %w", err)
	}
	g = &gw{store: store, dir: dir, key: key, addrs: map[string]string{}, failed: make(chan error, 4)}
	notifier := mailbox.NewNotifier()
	store.RouteLocally(cfg.IMAP.Hosted, notifier.Notify) // gateway mail to hosted practitioners: their INBOX
	in := intake.New(dir, store, store, log.With("part", "intake"), nil)
	in.Events = store
	id, err := loadIdentity(cfg.SMIME)
	if err != nil {
		g.shutdown(log)
		return nil, err
	}
	validator, roots, err := newValidator(cfg.Trust, log.With("part", "certs"))
	if err != nil {
		g.shutdown(log)
		return nil, err
	}
	in.SMIME = intakeSMIME(id, validator, roots, store, log.With("part", "intake"))
	sealing, err := sealPolicy(cfg.SMIME, store)
	if err != nil {
		g.shutdown(log)
		return nil, err
	}
	g.identity, g.validator = id, validator
	if err := g.startRelay(cfg, log); err != nil {
		g.shutdown(log)
		return nil, err
	}
	g.pipeline = deliver.New(deliver.Options{Store: store, Dir: dir, Validator: validator, Signer: id.signer(), Sealing: sealing,
		Hostname: cfg.Hostname, Queued: g.relay.Wake, Hosted: cfg.IMAP.Hosted, Delivered: notifier.Notify,
		Log: log.With("part", "delivery"), Held: store.Held, Builder: g.builder,
		Reports: mailbox.ReportOptions{Deadline: cfg.Ledger.ReceiptDeadline.D(), FirstAfter: cfg.Ledger.ReceiptFirstAfter.D()},
		Notice: (&notify.Builder{From: cfg.PickupNotifyFrom(), Report: cfg.PickupReportTo(), Hostname: cfg.Hostname,
			BaseURL: cfg.PickupBaseURL()}).Build,
		Link: mailbox.LinkRequest{Lifetime: cfg.Pickup.LinkLifetime.D(), MaxDownloads: cfg.Pickup.MaxDownloads}})
	pc := cfg.Pickup
	ph, err := pickup.New(pickup.Options{Store: store, Auth: in, Source: pickup.SourceFunc(g.pipeline.PickupContents),
		Directory: dir, Log: log.With("part", "pickup"), Contact: cfg.PickupReportTo(), ReasonRequired: pc.ReasonRequired,
		SessionIdle: pc.SessionIdle.D(), SessionMax: pc.SessionMax.D(), IPFailures: pc.FailuresPerAddress,
		IPWindow: pc.FailureWindow.D(), AccountFailures: pc.FailuresPerAccount, LinkFailures: pc.FailuresPerLink})
	if err != nil {
		g.shutdown(log)
		return nil, fmt.Errorf("pickup page: %w", err)
	}
	if cfg.IMAP.Enabled() {
		opt := imapd.FromConfig(cfg)
		opt.TLSConfig, opt.Notifier, opt.Log = tlsConf, notifier, log.With("part", "imap")
		opt.Standing = imapd.DirectoryStanding(dir, nil)
		g.imap = imapd.New(in, store, opt)
	}
	in.OnAccepted = g.pipeline.Kick
	in.MDN = &intake.MDNOptions{Store: store, Hostname: cfg.Hostname, Hosted: cfg.IMAP.Hosted, Delivered: notifier.Notify, Queued: g.relay.Wake}
	g.runPipeline(log, func(ctx context.Context) { ph.RunExpiry(ctx, pc.ExpiryCheckInterval.D()) })
	g.smtp = smtpd.New(in, smtpOptions(cfg, tlsConf, log))
	childKey, err := mailbox.DeriveChildKey(key)
	if err != nil {
		g.shutdown(log)
		return nil, err
	}
	apiH, err := api.New(api.Options{Intake: in, Store: store, Dir: dir, ChildKey: childKey, Limits: api.LimitsFromConfig(cfg.API),
		Hostname: cfg.Hostname, Log: log.With("part", "api"), SpoolDir: cfg.DataDir})
	if err != nil {
		g.shutdown(log)
		return nil, fmt.Errorf("api: %w", err)
	}
	mounts := map[string]http.Handler{pickup.Prefix: ph}
	if err := autoconfig.Mount(mounts, autoconfig.FromConfig(cfg)); err != nil {
		log.Warn("mail client autoconfig not served", "err", err)
	}
	g.web, g.apiWeb = httpd.Split(tlsConf, log.With("part", "https"), mounts, api.Prefix, apiH, cfg.API.Listen != "")
	for _, role := range []struct {
		name, addr string
		serve      func(net.Listener) error
	}{
		{"submission", cfg.SMTP.Submission, g.smtp.ServeSubmission},
		{"submissions", cfg.SMTP.Submissions, g.smtp.ServeSubmissions},
		{"https", cfg.HTTPS.Listen, g.web.Serve},
		{"api", cfg.API.Listen, g.apiWeb.Serve}, // only when api.listen is set (g.apiWeb is nil otherwise)
		{"imaps", imapAddr(cfg, cfg.IMAP.IMAPS), g.serveIMAPS},
		{"imap", imapAddr(cfg, cfg.IMAP.IMAP), g.serveIMAP},
	} {
		l := ls[role.name]
		if (role.name == "imap" || role.name == "imaps") && g.imap == nil || role.name == "api" && g.apiWeb == nil {
			if l != nil {
				l.Close()
			}
			continue
		}
		if l == nil && role.addr != "" {
			if l, err = net.Listen("tcp", role.addr); err != nil {
				g.shutdown(log)
				return nil, fmt.Errorf("listen for %s on %s: %w", role.name, role.addr, err)
			}
			ls[role.name] = l
		}
		if l == nil {
			continue
		}
		g.addrs[role.name] = l.Addr().String()
		go func(serveFn func(net.Listener) error, l net.Listener) {
			if err := serveFn(l); err != nil && !errors.Is(err, net.ErrClosed) {
				g.failed <- err
			}
		}(role.serve, l)
	}
	if g.admin, err = startAdmin(cfg.Admin.Socket, g, log.With("part", "admin")); err != nil {
		g.shutdown(log)
		return nil, err
	}
	g.addrs["admin_socket"] = cfg.Admin.Socket
	return g, nil
}

func (g *gw) shutdown(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if g.smtp != nil {
		_ = g.smtp.Shutdown(ctx) // lets sessions under way finish, then closes them when ctx ends
	}
	if g.web != nil {
		_ = g.web.Shutdown(ctx)
	}
	if g.apiWeb != nil {
		_ = g.apiWeb.Shutdown(ctx)
	}
	if g.admin != nil {
		g.admin.Close()
	}
	if g.imap != nil {
		_ = g.imap.Shutdown(ctx)
	}
	if g.stopPipeline != nil {
		g.stopPipeline()
		<-g.pipelineDone
	}
	if g.stopRelay != nil {
		g.stopRelay()
		<-g.relayDone
	}
	if err := g.store.Close(); err != nil {
		log.Error("closing the store", "err", err)
	}
}

func loadTLS(tc configs.TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	minV := uint16(tls.VersionTLS12)
	if tc.MinVersion == "1.3" {
		minV = tls.VersionTLS13
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minV}, nil
}

// openDirectories opens the configured directories behind one router. LDAP directories get a
// look-up cache; given a logger (serve) they log through it and are probed in the background, without
// one (CLI commands) they log nothing and are not probed.
func openDirectories(dcs []configs.DirectoryConfig, logger ...*slog.Logger) (directory.Directory, error) {
	var log *slog.Logger
	if len(logger) > 0 {
		log = logger[0]
	}
	byDomain := map[string]directory.Directory{}
	for i, dc := range dcs {
		var d directory.Directory
		switch dc.Type {
		case "ldap":
			dlog := slog.New(slog.DiscardHandler)
			if log != nil {
				dlog = log.With("part", "directory")
			}
			ld, err := openLDAP(&dcs[i], dlog)
			if err != nil {
				return nil, err
			}
			if log != nil {
				probeLDAP(ld, dc.LDAP.ConnectTimeout.D()+dc.LDAP.Timeout.D(), dlog)
			}
			d = directory.NewCache(ld, dc.LDAP.CacheTTL.D(), lookupCacheSize, nil)
		default:
			fd, err := ldif.Open(dc.File, dc.Name, dc.Domains)
			if err != nil {
				return nil, fmt.Errorf("directory %q: %w", dc.Name, err)
			}
			d = fd
		}
		for _, dom := range dc.Domains {
			byDomain[dom] = d
		}
	}
	return directory.NewRouter(byDomain), nil
}

func smtpOptions(cfg *configs.Config, tlsConf *tls.Config, log *slog.Logger) smtpd.Options {
	s := cfg.SMTP
	return smtpd.Options{
		Hostname:                cfg.Hostname,
		MaxMessageBytes:         int64(s.MaxMessageSize),
		MaxRecipients:           s.MaxRecipients,
		MaxLineLength:           s.MaxLineLength,
		ReadTimeout:             s.ReadTimeout.D(),
		WriteTimeout:            s.WriteTimeout.D(),
		MaxSessions:             s.MaxSessions,
		MaxSessionsPerIP:        s.MaxSessionsPerIP,
		AuthFailuresBeforeDelay: s.AuthFailuresBeforeDelay,
		AuthFailuresBeforeBlock: s.AuthFailuresBeforeBlock,
		AuthFailureWindow:       s.AuthFailureWindow.D(),
		TLSConfig:               tlsConf,
		Log:                     log.With("part", "smtp"),
	}
}

// startRelay starts the outbound delivery workers; they stop before the store closes.
func (g *gw) startRelay(cfg *configs.Config, log *slog.Logger) error {
	opt, err := relay.FromConfig(cfg, log.With("part", "relay"))
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	g.builder = deliver.NewBuilder(g.store, g.identity.signer())
	opt.Build = g.builder.Build // package copies are sealed as they are sent
	if g.relay, err = relay.New(g.store, opt); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stopRelay, g.relayDone = cancel, make(chan struct{})
	go func() {
		defer close(g.relayDone)
		if err := g.relay.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("relay stopped", "err", err)
		}
	}()
	return nil
}

// runPipeline starts the delivery pipeline and the links' expiry; they stop before the relay and the
// store.
func (g *gw) runPipeline(log *slog.Logger, expiry func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	g.stopPipeline, g.pipelineDone = cancel, make(chan struct{})
	go expiry(ctx)
	go func() {
		defer close(g.pipelineDone)
		if err := g.pipeline.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("delivery pipeline stopped", "err", err)
		}
	}()
}

// imapAddr is addr when hosted mailboxes are configured, else "" (no IMAP listener).
func imapAddr(cfg *configs.Config, addr string) string {
	if !cfg.IMAP.Enabled() {
		return ""
	}
	return addr
}

func (g *gw) serveIMAPS(l net.Listener) error { return g.imap.ServeIMAPS(l) }
func (g *gw) serveIMAP(l net.Listener) error  { return g.imap.ServeIMAP(l) }

// ledgerOptions are the ledger's key, checkpoint file and witness from the configuration; every
// read-write open of the store passes them (the store refuses a ledger key it does not know).
func ledgerOptions(cfg *configs.Config) mailbox.LedgerOptions {
	lc := cfg.Ledger
	return mailbox.LedgerOptions{KeyFile: lc.KeyFile, CheckpointFile: lc.CheckpointFile, Origin: lc.Origin,
		Interval: lc.CheckpointInterval.D(), WitnessURL: lc.WitnessURL}
}
