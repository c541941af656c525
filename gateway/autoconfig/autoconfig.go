// Package autoconfig serves the mail client set-up document Thunderbird (and other clients that read
// the same format) fetches when a practitioner adds an account: the gateway's IMAP and SMTP submission
// servers, their ports and TLS modes, and that the user name is the mail address. Mount the handler on
// the HTTPS server at /.well-known/autoconfig/mail/config-v1.1.xml and /mail/config-v1.1.xml.
package autoconfig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Paths are where clients look for the document on the gateway's HTTPS server.
var Paths = []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"}

// Settings are what the document tells clients. Addresses are listen addresses ("host:port" or
// ":port"); only their port is used, with Hostname as the host. An empty address is not offered.
type Settings struct {
	Hostname    string   // the name clients connect to; must match the TLS certificate
	Domains     []string // the hosted mail domains
	IMAPS       string   // IMAP over implicit TLS
	IMAP        string   // IMAP with STARTTLS
	Submissions string   // SMTP submission over implicit TLS
	Submission  string   // SMTP submission with STARTTLS
	DisplayName string   // default: "cafgate (Hostname)"
}

type clientConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider provider `xml:"emailProvider"`
}

type provider struct {
	ID       string   `xml:"id,attr"`
	Domains  []string `xml:"domain"`
	Display  string   `xml:"displayName"`
	Short    string   `xml:"displayShortName"`
	Incoming []server `xml:"incomingServer"`
	Outgoing []server `xml:"outgoingServer"`
}

type server struct {
	Type     string `xml:"type,attr"`
	Hostname string `xml:"hostname"`
	Port     int    `xml:"port"`
	Socket   string `xml:"socketType"`
	Auth     string `xml:"authentication"`
	Username string `xml:"username"`
}

// handler serves one prepared document.
type handler struct {
	doc     []byte
	domains map[string]bool
}

// New checks s and returns the handler. It answers GET and HEAD; when the query names the address
// being set up (emailaddress=...), an address outside the hosted domains gets 404, so the gateway does
// not offer itself for mail it does not hold. The address is never echoed or logged.
func New(s Settings) (http.Handler, error) {
	if s.Hostname == "" || strings.ContainsAny(s.Hostname, " /@:") {
		return nil, fmt.Errorf("autoconfig: host name %q", s.Hostname)
	}
	if len(s.Domains) == 0 {
		return nil, errors.New("autoconfig: no hosted domains")
	}
	doc, err := document(s)
	if err != nil {
		return nil, err
	}
	h := &handler{doc: doc, domains: map[string]bool{}}
	for _, d := range s.Domains {
		h.domains[strings.ToLower(d)] = true
	}
	return h, nil
}

func document(s Settings) ([]byte, error) {
	name := s.DisplayName
	if name == "" {
		name = "cafgate (" + s.Hostname + ")"
	}
	p := provider{ID: s.Hostname, Domains: s.Domains, Display: name, Short: "cafgate"}
	for _, e := range []struct {
		addr, typ, socket string
		in                bool
	}{
		{s.IMAPS, "imap", "SSL", true}, {s.IMAP, "imap", "STARTTLS", true},
		{s.Submissions, "smtp", "SSL", false}, {s.Submission, "smtp", "STARTTLS", false},
	} {
		if e.addr == "" {
			continue
		}
		port, err := portOf(e.addr)
		if err != nil {
			return nil, err
		}
		srv := server{Type: e.typ, Hostname: s.Hostname, Port: port, Socket: e.socket, Auth: "password-cleartext", Username: "%EMAILADDRESS%"}
		if e.in {
			p.Incoming = append(p.Incoming, srv)
		} else {
			p.Outgoing = append(p.Outgoing, srv)
		}
	}
	if len(p.Incoming) == 0 {
		return nil, errors.New("autoconfig: no IMAP listener to offer")
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(clientConfig{Version: "1.1", Provider: p}); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("autoconfig: listen address %q: %w", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("autoconfig: listen address %q has no port number", addr)
	}
	return n, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		at := strings.LastIndexByte(addr, '@')
		if at < 0 || !h.domains[strings.ToLower(addr[at+1:])] {
			http.NotFound(w, r)
			return
		}
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.doc)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(h.doc)
}
