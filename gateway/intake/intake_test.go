package intake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
	"cafgate/policy"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type fakeDir struct {
	people map[string]*directory.Practitioner
	pw     map[string]string
	down   bool
}

func (d *fakeDir) Authenticate(_ context.Context, mail, pw string) (*directory.Practitioner, error) {
	if d.down {
		return nil, fmt.Errorf("%w: dial tcp: refused", directory.ErrUnavailable)
	}
	p, ok := d.people[mail]
	if !ok || d.pw[mail] != pw {
		return nil, fmt.Errorf("%w: wrong password", directory.ErrBadCredentials)
	}
	c := *p
	return &c, nil
}

func (d *fakeDir) Lookup(_ context.Context, mail string) (*directory.Practitioner, error) {
	if d.down {
		return nil, fmt.Errorf("%w: timeout", directory.ErrUnavailable)
	}
	p, ok := d.people[mail]
	if !ok {
		return nil, directory.ErrNotFound
	}
	c := *p
	return &c, nil
}

type fakeStore struct {
	got []*mailbox.Incoming
	err error
}

func (s *fakeStore) Accept(_ context.Context, m *mailbox.Incoming) error {
	if s.err != nil {
		return s.err
	}
	s.got = append(s.got, m)
	return nil
}

// fakeDecider refuses the recipients in refuse and delivers everything to the others.
type fakeDecider struct {
	refuse   map[string]bool
	recorded map[string]*mailbox.PackageDecision
	pkgs     []policy.Package
}

func (f *fakeDecider) DecidePackage(_ context.Context, at time.Time, _ *directory.Practitioner, to []mailbox.Addressee, p policy.Package) (*mailbox.PackageDecision, error) {
	f.pkgs = append(f.pkgs, p)
	pd := &mailbox.PackageDecision{At: at, Package: p}
	for _, a := range to {
		d := policy.Decision{Recipient: a.Mail, Result: policy.DeliverAll, Reason: policy.ReasonConsent}
		if f.refuse[a.Mail] {
			d = policy.Decision{Recipient: a.Mail, Result: policy.Refuse, Reason: policy.ReasonRefusedAgency, Sentence: "The family has refused sharing with this agency."}
		}
		pd.Decisions = append(pd.Decisions, d)
	}
	return pd, nil
}

func (f *fakeDecider) RecordDecisions(_ context.Context, id string, pd *mailbox.PackageDecision) error {
	f.recorded[id] = pd
	return nil
}

func setup(t *testing.T) (*Intake, *fakeDir, *fakeStore, *bytes.Buffer) {
	t.Helper()
	valid := now.AddDate(1, 0, 0)
	d := &fakeDir{people: map[string]*directory.Practitioner{
		"ann@school.test": {Mail: "ann@school.test", DN: "uid=ann", VettingValidUntil: valid},
		"bob@health.test": {Mail: "bob@health.test", DN: "uid=bob", VettingValidUntil: valid},
		"old@health.test": {Mail: "old@health.test", DN: "uid=old", VettingValidUntil: now.AddDate(0, 0, -1)},
		"off@police.test": {Mail: "off@police.test", DN: "uid=off", VettingValidUntil: valid, Disabled: true},
	}, pw: map[string]string{"ann@school.test": "s3cret", "old@health.test": "pw", "off@police.test": "pw"}}
	s := &fakeStore{}
	var log bytes.Buffer
	dec := &fakeDecider{refuse: map[string]bool{}, recorded: map[string]*mailbox.PackageDecision{}}
	return New(d, s, dec, slog.New(slog.NewTextHandler(&log, nil)), func() time.Time { return now }), d, s, &log
}

func kindOf(t *testing.T, err error) fault.Kind {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *fault.Error", err)
	}
	return fe.Kind
}

func TestAuthenticate(t *testing.T) {
	in, d, _, log := setup(t)
	c := Client{Via: "submission", RemoteAddr: "127.0.0.1:1"}
	if _, err := in.Authenticate(context.Background(), "Ann@School.test", "s3cret", c); err != nil {
		t.Fatalf("good sign-in refused: %v", err)
	}
	for _, tc := range []struct{ user, pw string }{
		{"ann@school.test", "wrong"}, {"nobody@school.test", "s3cret"}, {"ann@school.test", ""},
		{"old@health.test", "pw"}, {"off@police.test", "pw"}, {"not-an-address", "x"},
	} {
		_, err := in.Authenticate(context.Background(), tc.user, tc.pw, c)
		if k := kindOf(t, err); k != fault.BadCredentials {
			t.Errorf("%s/%s: kind %v, want BadCredentials (one face for every refusal)", tc.user, tc.pw, k)
		}
	}
	if strings.Contains(log.String(), "s3cret") || strings.Contains(log.String(), "wrong") && strings.Contains(log.String(), "password=") {
		t.Fatal("password reached the log")
	}
	d.down = true
	_, err := in.Authenticate(context.Background(), "ann@school.test", "s3cret", c)
	if k := kindOf(t, err); k != fault.AuthDirectoryUnavailable {
		t.Fatalf("directory down at sign-in: kind %v, want AuthDirectoryUnavailable", k)
	}
	if f := fault.FaceOf(fault.AuthDirectoryUnavailable); f.SMTP != 454 || f.Enhanced != [3]int{4, 7, 0} {
		t.Fatalf("face %+v, want 454 4.7.0", f)
	}
}

func TestSenderAndRecipients(t *testing.T) {
	in, d, _, _ := setup(t)
	ctx, c := context.Background(), Client{}
	ann, _ := d.Lookup(ctx, "ann@school.test")
	cases := []struct {
		name string
		err  error
		want fault.Kind
		ok   bool
	}{
		{"sender is self", in.Sender(ctx, ann, "ANN@school.test", c), 0, true},
		{"sender spoofed", in.Sender(ctx, ann, "bob@health.test", c), fault.SenderMismatch, false},
		{"no sign-in", in.Sender(ctx, nil, "ann@school.test", c), fault.AuthRequired, false},
		{"known recipient", in.Recipient(ctx, ann, "bob@health.test", c), 0, true},
		{"unknown recipient", in.Recipient(ctx, ann, "zed@health.test", c), fault.UnknownRecipient, false},
		{"lapsed recipient", in.Recipient(ctx, ann, "old@health.test", c), fault.NotPermitted, false},
		{"disabled recipient", in.Recipient(ctx, ann, "off@police.test", c), fault.NotPermitted, false},
		{"malformed recipient", in.Recipient(ctx, ann, "bob@", c), fault.BadCommand, false},
	}
	for _, tc := range cases {
		if tc.ok != (tc.err == nil) {
			t.Errorf("%s: err %v", tc.name, tc.err)
			continue
		}
		if !tc.ok && kindOf(t, tc.err) != tc.want {
			t.Errorf("%s: kind %v want %v", tc.name, kindOf(t, tc.err), tc.want)
		}
	}
	var fe *fault.Error
	errors.As(in.Recipient(ctx, ann, "old@health.test", c), &fe)
	if !strings.Contains(fe.Sentence(), "vetting") {
		t.Errorf("lapsed recipient sentence %q does not say why", fe.Sentence())
	}
	errors.As(in.Recipient(ctx, ann, "off@police.test", c), &fe)
	if !strings.Contains(fe.Sentence(), "disabled") {
		t.Errorf("disabled recipient sentence %q does not say why", fe.Sentence())
	}
	d.down = true
	if k := kindOf(t, in.Recipient(ctx, ann, "bob@health.test", c)); k != fault.DirectoryUnavailable {
		t.Fatalf("directory down at RCPT: %v", k)
	}
	if k := kindOf(t, in.Sender(ctx, ann, "ann@school.test", c)); k != fault.DirectoryUnavailable {
		t.Fatalf("directory down at MAIL: %v", k)
	}
	if f := fault.FaceOf(fault.DirectoryUnavailable); f.SMTP != 451 || f.Enhanced != [3]int{4, 4, 3} {
		t.Fatalf("face %+v, want 451 4.4.3", f)
	}
}

func TestAccept(t *testing.T) {
	in, d, s, log := setup(t)
	dec := in.Decider.(*fakeDecider)
	ctx := context.Background()
	ann, _ := d.Lookup(ctx, "ann@school.test")
	body := []byte("From: ann@school.test\r\nSubject: [CAF-2026-000001] secret subject\r\n\r\nchild ZZ123456\r\n")
	id, err := in.Accept(ctx, &Submission{Sender: ann, From: ann.Mail, Recipients: []string{"Bob@Health.test"}, Content: body})
	if err != nil || len(id) != 16 {
		t.Fatalf("accept: %q %v", id, err)
	}
	m := s.got[0]
	// The digest is left to the store, which takes it from the bytes it seals.
	if m.ID != id || m.Digest != ([32]byte{}) || !bytes.Equal(m.Content, body) || m.Recipients[0] != "bob@health.test" || m.Sender != ann.Mail {
		t.Fatalf("stored %+v", m)
	}
	if dec.recorded[id] == nil || dec.pkgs[0].EpisodeRef != "CAF-2026-000001" || len(dec.pkgs[0].Sections) != 6 {
		t.Fatalf("decisions not asked for or not recorded: %+v %+v", dec.pkgs, dec.recorded)
	}
	if strings.Contains(log.String(), "secret subject") || strings.Contains(log.String(), "ZZ123456") {
		t.Fatal("content reached the log")
	}
	s.err = fmt.Errorf("%w: database or disk is full", mailbox.ErrFull)
	if _, err := in.Accept(ctx, &Submission{Sender: ann, Recipients: []string{"bob@health.test"}, Content: body}); kindOf(t, err) != fault.StoreFull {
		t.Fatalf("disk full: %v", err)
	}
	s.err = fmt.Errorf("%w: database is locked", mailbox.ErrUnavailable)
	if _, err := in.Accept(ctx, &Submission{Sender: ann, Recipients: []string{"bob@health.test"}, Content: body}); kindOf(t, err) != fault.StoreUnavailable {
		t.Fatalf("locked: %v", err)
	}
	s.err = io.ErrUnexpectedEOF
	var fe *fault.Error
	_, err = in.Accept(ctx, &Submission{Sender: ann, Recipients: []string{"bob@health.test"}, Content: body})
	if !errors.As(err, &fe) || fe.Kind != fault.StoreUnavailable || strings.Contains(fe.Sentence(), "EOF") {
		t.Fatalf("unclassified store error must not leak its text: %v", err)
	}
}

func TestAcceptRefusals(t *testing.T) {
	in, d, s, _ := setup(t)
	dec := in.Decider.(*fakeDecider)
	ctx := context.Background()
	ann, _ := d.Lookup(ctx, "ann@school.test")
	cases := []struct {
		name, body string
		kind       fault.Kind
		words      string
	}{
		{"no episode reference", "From: ann@school.test\r\nSubject: hello\r\n\r\nx\r\n", fault.BadMessage, "episode reference"},
		{"header From is someone else", "From: bob@health.test\r\nSubject: [CAF-2026-000001]\r\n\r\nx\r\n", fault.SenderMismatch, "only send as yourself"},
		{"every recipient refused", "From: ann@school.test\r\nSubject: [CAF-2026-000001]\r\n\r\nx\r\n", fault.NotPermitted, "refused sharing with this agency"},
	}
	dec.refuse["bob@health.test"] = true
	for _, tc := range cases {
		_, err := in.Accept(ctx, &Submission{Sender: ann, From: ann.Mail, Recipients: []string{"bob@health.test"}, Content: []byte(tc.body)})
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != tc.kind || !strings.Contains(fe.Sentence(), tc.words) {
			t.Errorf("%s: %v, want kind %v saying %q", tc.name, err, tc.kind, tc.words)
		}
	}
	if len(s.got) != 0 {
		t.Fatalf("refused packages were stored: %d", len(s.got))
	}
	d.down = true
	if _, err := in.Accept(ctx, &Submission{Sender: ann, Recipients: []string{"bob@health.test"}, Content: []byte(cases[2].body)}); kindOf(t, err) != fault.DirectoryUnavailable {
		t.Fatalf("directory down at DATA: %v", err)
	}
}

func TestCheckContent(t *testing.T) {
	good := "Subject: x\r\n\r\nline one\r\n.line two\r\n"
	if err := CheckContent([]byte(good)); err != nil {
		t.Fatalf("clean content refused: %v", err)
	}
	for _, bad := range []string{"a\n.\nb\r\n", "a\n.\r\nb\r\n", "a\r\n.\nb\r\n", "a\r.\r\nb\r\n", "a\x00b\r\n", "end\r", "x\ny\r\n"} {
		err := CheckContent([]byte(bad))
		if err == nil || err.Kind != fault.BadMessage {
			t.Errorf("%q: %v, want BadMessage", bad, err)
		}
	}
}

// TestCheckContentFirstFault: the sentence names the first fault, as a byte-by-byte scan would.
func TestCheckContentFirstFault(t *testing.T) {
	for bad, want := range map[string]string{
		"a\rb\n":         "bare carriage return",
		"a\nb\r":         "bare line feed",
		"ok\r\na\r\rb\n": "bare carriage return",
		"ok\r\n\n\r":     "bare line feed",
		"ok\r\nend\r":    "bare carriage return",
	} {
		if err := CheckContent([]byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}

func FuzzCheckContent(f *testing.F) {
	for _, s := range []string{"a\r\n", "a\n", "a\r", "\x00", "\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckContent(data)
		clean := !bytes.Contains(data, []byte{0}) &&
			bytes.Count(data, []byte("\r")) == bytes.Count(data, []byte("\r\n")) &&
			bytes.Count(data, []byte("\n")) == bytes.Count(data, []byte("\r\n"))
		if clean != (err == nil) {
			t.Fatalf("CheckContent(%q) = %v, clean=%v", data, err, clean)
		}
	})
}
