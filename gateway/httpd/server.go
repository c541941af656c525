// Package httpd is the HTTPS front door: the gateway's web security headers and TLS around the
// handlers mounted on it (the pickup page), and a health check.
package httpd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is the HTTPS listener.
type Server struct {
	srv *http.Server
}

// New returns a Server presenting tlsConf (its MinVersion is respected; nil is refused by Serve).
// mounts adds handlers by pattern (e.g. "/pickup/"); they sit behind the same security headers.
func New(tlsConf *tls.Config, log *slog.Logger, mounts map[string]http.Handler) *Server {
	if tlsConf != nil && tlsConf.CipherSuites == nil {
		tlsConf = tlsConf.Clone()
		tlsConf.CipherSuites = AEADSuites
	}
	mux := http.NewServeMux()
	for pattern, h := range mounts {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})
	return &Server{srv: &http.Server{
		Handler:           SecurityHeaders(mux),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
}

// AEADSuites are the TLS 1.2 cipher suites the HTTPS listener offers when its configuration names
// none: forward secrecy and AEAD only. Go's defaults add CBC suites (CBC with HMAC-SHA1, open to
// Lucky13-style timing), which every browser and HTTP client since 2016 can do without. TLS 1.3 suites
// are all AEAD and not configurable.
var AEADSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Split builds the HTTPS servers. pages (the pickup page) are served on the shared listener. The API
// (api at apiPrefix) is served there too when separate is false, and the shared listener then requests
// (never requires) a client certificate, for API clients that sign in with one. When separate is true
// the API gets its own server, which requests client certificates, and the shared one neither serves
// the API nor requests certificates, so a browser holding certificates is not offered a chooser on the
// pickup page. apiSrv is nil unless separate. tlsConf is cloned, never changed.
func Split(tlsConf *tls.Config, log *slog.Logger, pages map[string]http.Handler, apiPrefix string, api http.Handler, separate bool) (shared, apiSrv *Server) {
	sharedTLS, mounts := tlsConf.Clone(), map[string]http.Handler{}
	for p, h := range pages {
		mounts[p] = h
	}
	if !separate {
		sharedTLS.ClientAuth = tls.RequestClientCert // API clients may sign in with a certificate (pinned by fingerprint)
		mounts[apiPrefix] = api
		return New(sharedTLS, log, mounts), nil
	}
	sharedTLS.ClientAuth = tls.NoClientCert
	apiTLS := tlsConf.Clone()
	apiTLS.ClientAuth = tls.RequestClientCert
	return New(sharedTLS, log, mounts), New(apiTLS, log.With("listener", "api"), map[string]http.Handler{apiPrefix: api})
}

// SecurityHeaders sets the headers every page and API answer carries.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// Serve accepts TLS connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(tls.NewListener(l, s.srv.TLSConfig))
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for requests under way, up to ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
