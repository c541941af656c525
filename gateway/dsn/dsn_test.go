package dsn

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os/exec"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

const original = "Message-ID: <pkg-1@gw.example>\r\nFrom: alice@agency.example\r\nTo: bob@council.example\r\n" +
	"Subject: sealed package\r\nX-Long: one\r\n two\r\n\r\nSECRET BODY child-identifier-123\r\n"

func report() *Report {
	return &Report{
		ReportingMTA: "gw.example", To: "alice@agency.example", Date: t0, MessageID: "<dsn-1@gw.example>",
		ArrivalDate: t0.Add(-time.Hour), OriginalMessageID: "<pkg-1@gw.example>",
		Recipients: []Recipient{{
			Final: "bob@council.example", Action: Failed, Status: "5.1.1", RemoteMTA: "mx.council.example",
			Diagnostic:  "550 5.1.1 <bob@council.example>: Recipient address rejected: User unknown in virtual mailbox table",
			LastAttempt: t0,
		}},
		Headers: []byte(original),
	}
}

// parts parses a built report and returns its top header and its three parts' types and bodies.
func parts(t *testing.T, b []byte) (mail.Header, []string, [][]byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var bodies [][]byte
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		types = append(types, p.Header.Get("Content-Type"))
		bodies = append(bodies, body)
	}
	return m.Header, types, bodies
}

func TestBuildFailedReport(t *testing.T) {
	b, err := Build(report())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("SECRET BODY")) || bytes.Contains(b, []byte("child-identifier")) {
		t.Fatal("the report carries the original's body")
	}
	if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("bare LF in the report")
	}
	h, types, bodies := parts(t, b)
	if h.Get("Subject") != "Undelivered Mail Returned to Sender" || h.Get("Auto-Submitted") != "auto-replied" ||
		h.Get("To") != "<alice@agency.example>" || h.Get("References") != "<pkg-1@gw.example>" {
		t.Fatalf("top header = %v", h)
	}
	want := []string{"text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"}
	if strings.Join(types, "|") != strings.Join(want, "|") {
		t.Fatalf("part types = %v", types)
	}
	status := string(bodies[1])
	for _, f := range []string{"Reporting-MTA: dns; gw.example\r\n", "Final-Recipient: rfc822; bob@council.example\r\n",
		"Action: failed\r\n", "Status: 5.1.1\r\n", "Remote-MTA: dns; mx.council.example\r\n",
		"Diagnostic-Code: smtp; 550 5.1.1", "Arrival-Date: "} {
		if !strings.Contains(status, f) {
			t.Errorf("delivery-status lacks %q:\n%s", f, status)
		}
	}
	for _, line := range strings.Split(status, "\r\n") {
		if len(line) > 78 {
			t.Errorf("unfolded line of %d characters: %q", len(line), line)
		}
	}
	if got := string(bodies[2]); got != strings.SplitN(original, "\r\n\r\n", 2)[0]+"\r\n" {
		t.Errorf("headers part = %q", got)
	}
	if !strings.Contains(string(bodies[0]), "User unknown") || !strings.Contains(string(bodies[0]), "will not try again") {
		t.Errorf("human part = %s", bodies[0])
	}
}

func TestBuildDelayedReport(t *testing.T) {
	r := report()
	r.Recipients[0] = Recipient{Final: "bob@council.example", Action: Delayed, Diagnostic: "451 4.3.0 try again later",
		WillRetryUntil: t0.Add(96 * time.Hour)}
	b, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	h, _, bodies := parts(t, b)
	if h.Get("Subject") != "Delayed Mail (still being retried)" {
		t.Fatalf("subject %q", h.Get("Subject"))
	}
	for _, f := range []string{"Action: delayed\r\n", "Status: 4.0.0\r\n", "Will-Retry-Until: "} {
		if !strings.Contains(string(bodies[1]), f) {
			t.Errorf("delivery-status lacks %q:\n%s", f, bodies[1])
		}
	}
	if !strings.Contains(string(bodies[0]), "still trying") {
		t.Errorf("human part = %s", bodies[0])
	}
}

func TestBuildRefusesInjection(t *testing.T) {
	for name, edit := range map[string]func(r *Report){
		"CRLF in To":         func(r *Report) { r.To = "alice@agency.example>\r\nBcc: <x@y" },
		"space in final":     func(r *Report) { r.Recipients[0].Final = "bob smith@council.example" },
		"bad message ID":     func(r *Report) { r.MessageID = "<a@b>\r\nX: y" },
		"status vs action":   func(r *Report) { r.Recipients[0].Status = "4.1.1" },
		"unknown action":     func(r *Report) { r.Recipients[0].Action = "lost" },
		"no recipients":      func(r *Report) { r.Recipients = nil },
		"bad remote MTA":     func(r *Report) { r.Recipients[0].RemoteMTA = "mx\r\nX: y" },
		"bad reporting MTA":  func(r *Report) { r.ReportingMTA = "gw example" },
		"no date":            func(r *Report) { r.Date = time.Time{} },
		"bad original ID":    func(r *Report) { r.OriginalMessageID = "pkg-1" },
		"bad author address": func(r *Report) { r.From = "postmaster" },
	} {
		r := report()
		edit(r)
		if _, err := Build(r); err == nil {
			t.Errorf("%s: Build accepted it", name)
		}
	}
	r := report()
	r.Recipients[0].Diagnostic = "550 bad\r\nInjected: yes"
	b, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\r\nInjected: yes")) {
		t.Fatal("a diagnostic's line break reached the report")
	}
}

func TestHeaderBlockCutsAtAField(t *testing.T) {
	full := HeaderBlock([]byte(original), MaxHeaders)
	if !bytes.HasSuffix(full, []byte("X-Long: one\r\n two\r\n")) {
		t.Fatalf("folded field lost: %q", full)
	}
	cut := HeaderBlock([]byte(original), len(full)-3)
	if bytes.Contains(cut, []byte("X-Long")) || !bytes.HasSuffix(cut, []byte("Subject: sealed package\r\n")) {
		t.Fatalf("cut = %q", cut)
	}
	lf := HeaderBlock([]byte("A: 1\nB: 2\n\nbody\n"), 100)
	if string(lf) != "A: 1\r\nB: 2\r\n" {
		t.Fatalf("LF input = %q", lf)
	}
}

func TestInternationalisedAddress(t *testing.T) {
	r := report()
	r.Recipients[0].Final = "zoë@council.example"
	b, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	_, _, bodies := parts(t, b)
	if !strings.Contains(string(bodies[1]), `Final-Recipient: utf-8; zo\x{EB}@council.example`) {
		t.Fatalf("delivery-status = %s", bodies[1])
	}
}

// TestPythonReadsTheReport parses the report with Python's email package, as a receiving mail client
// would, and checks the structure it sees.
func TestPythonReadsTheReport(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	b, err := Build(report())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", pythonCheck)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if got["type"] != "multipart/report" || got["report_type"] != "delivery-status" || got["defects"] != 0.0 ||
		got["action"] != "failed" || got["status"] != "5.1.1" || got["final_recipient"] != "rfc822; bob@council.example" ||
		got["reporting_mta"] != "dns; gw.example" || got["headers_message_id"] != "<pkg-1@gw.example>" {
		t.Fatalf("python saw %v", got)
	}
}

// pythonCheck reads a report on stdin with Python's email package and prints what it found as JSON.
const pythonCheck = `
import sys, json, email
from email import policy
m = email.message_from_binary_file(sys.stdin.buffer, policy=policy.default)
parts = list(m.iter_parts())
blocks = parts[1].get_payload()
h = email.message_from_string(parts[2].get_content(), policy=policy.default)
print(json.dumps({
    "type": m.get_content_type(), "report_type": m.get_param("report-type"),
    "parts": [p.get_content_type() for p in parts],
    "defects": sum(len(p.defects) for p in m.walk()),
    "reporting_mta": str(blocks[0]["Reporting-MTA"]),
    "final_recipient": str(blocks[1]["Final-Recipient"]),
    "action": str(blocks[1]["Action"]), "status": str(blocks[1]["Status"]),
    "headers_message_id": str(h["Message-ID"]),
}))
`
