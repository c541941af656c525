package httpd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestHealthzOverTLSWithHeaders(t *testing.T) {
	cert, pool := selfSigned(t)
	s := New(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := cl.Get("https://" + l.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + l.Addr().String() + "/healthz"); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

// asksForCert reports whether the server at addr requests a client certificate in the handshake, and
// the status of GET path.
func asksForCert(t *testing.T, pool *x509.CertPool, addr, path string) (bool, int) {
	t.Helper()
	asked := false
	tc := &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		return &tls.Certificate{}, nil // none: the server only requests one
	}}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := cl.Get("https://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return asked, resp.StatusCode
}

func TestSplitListeners(t *testing.T) {
	cert, pool := selfSigned(t)
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ok := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Served", name) })
	}
	serve := func(s *Server) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(l)
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		return l.Addr().String()
	}
	pages := map[string]http.Handler{"/pickup/": ok("pickup")}

	// One listener: the pickup page and the API, and a client certificate is requested.
	shared, none := Split(tc, log, pages, "/v1/", ok("api"), false)
	if none != nil {
		t.Fatal("an API server without api.listen")
	}
	addr := serve(shared)
	if asked, st := asksForCert(t, pool, addr, "/pickup/x"); !asked || st != 200 {
		t.Errorf("shared listener: certificate requested %t, pickup %d", asked, st)
	}
	if _, st := asksForCert(t, pool, addr, "/v1/x"); st != 200 {
		t.Errorf("shared listener: API %d", st)
	}

	// Separate listeners: the pickup page's listener asks for no certificate and has no API; the API's does.
	shared, apiSrv := Split(tc, log, pages, "/v1/", ok("api"), true)
	addr, apiAddr := serve(shared), serve(apiSrv)
	if asked, st := asksForCert(t, pool, addr, "/pickup/x"); asked || st != 200 {
		t.Errorf("pickup listener: certificate requested %t, pickup %d", asked, st)
	}
	if _, st := asksForCert(t, pool, addr, "/v1/x"); st != 404 {
		t.Errorf("pickup listener serves the API: %d", st)
	}
	if asked, st := asksForCert(t, pool, apiAddr, "/v1/x"); !asked || st != 200 {
		t.Errorf("API listener: certificate requested %t, API %d", asked, st)
	}
	if _, st := asksForCert(t, pool, apiAddr, "/pickup/x"); st != 404 {
		t.Errorf("API listener serves the pickup page: %d", st)
	}
	if _, st := asksForCert(t, pool, apiAddr, "/healthz"); st != 200 {
		t.Errorf("API listener /healthz: %d", st)
	}
	if tc.ClientAuth != tls.NoClientCert {
		t.Error("Split changed the configuration it was given")
	}
}
