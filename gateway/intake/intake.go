// Package intake is the protocol-neutral door behind the SMTP and HTTPS front doors: it signs
// practitioners in through the directory, checks senders and recipients, checks the content, and
// commits each accepted message durably to the store of record before the front door answers.
package intake

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"cafgate/directory"
	"cafgate/envelope/pkg"
	"cafgate/gateway/fault"
	"cafgate/mailbox"
)

// Store is what intake needs of the store of record.
type Store interface {
	// Accept commits the message durably (content fsynced, transaction committed) and returns
	// only then. Errors wrap mailbox.ErrFull or mailbox.ErrUnavailable where they apply.
	Accept(ctx context.Context, m *mailbox.Incoming) error
}

// preparingStore is a store that seals a message while the intake checks it (mailbox.Store).
type preparingStore interface {
	PrepareAccept(m *mailbox.Incoming) *mailbox.Prepared
	AcceptPrepared(ctx context.Context, p *mailbox.Prepared, pd *mailbox.PackageDecision) error
}

// Client describes where a request came from, for logs and limits.
type Client struct {
	RemoteAddr string // host:port
	Via        string // "submission", "submissions", "https"
	TLS        bool
}

// Submission is one message handed over by a front door after its end of data.
type Submission struct {
	Sender     *directory.Practitioner
	From       string
	Recipients []string
	Content    []byte // the message as received, CRLF line ends
	Client     Client
	// Opened is set by Accept when the package's manifest opened an episode: the reference the
	// gateway gave it, for the answer to the sender.
	Opened string
}

// Intake implements the checks and the durable acceptance.
type Intake struct {
	Dir     directory.Directory
	Store   Store
	Decider Decider
	SMIME   *SMIME // nil: signed submissions cannot be checked and encrypted ones cannot be read
	// Events, when set, records sign-ins and refused sign-ins in the ledger.
	Events Events
	// OnAccepted, when set, is told after each durable acceptance (the delivery pipeline's Kick).
	OnAccepted func()
	MDN        *MDNOptions // read receipts (mdn.go); nil: they are refused
	Limits     pkg.Limits
	Log        *slog.Logger
	Now        func() time.Time
}

// New returns an Intake; now may be nil for time.Now.
func New(dir directory.Directory, store Store, decider Decider, log *slog.Logger, now func() time.Time) *Intake {
	if now == nil {
		now = time.Now
	}
	return &Intake{Dir: dir, Store: store, Decider: decider, Limits: pkg.DefaultLimits(), Log: log, Now: now}
}

// NormalizeMail lower-cases and trims a mail address; it returns "" for one that is not plausible.
func NormalizeMail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n\x00<>\"") {
		return ""
	}
	return s
}

// Authenticate signs a practitioner in. Every refusal has the same client face; the reason is logged
// against the error's ID.
func (in *Intake) Authenticate(ctx context.Context, user, password string, c Client) (*directory.Practitioner, error) {
	mail := NormalizeMail(user)
	if mail == "" || password == "" {
		return nil, in.logged(fault.New(fault.BadCredentials, "", errors.New("malformed user name or empty password")), c, "auth")
	}
	p, err := in.Dir.Authenticate(ctx, mail, password)
	if err == nil {
		err = p.Standing(in.Now()) // a refusal has the same face as a wrong password
	}
	if err != nil {
		in.recordSignIn(ctx, mail, c, err)
		if errors.Is(err, directory.ErrUnavailable) {
			return nil, in.logged(fault.New(fault.AuthDirectoryUnavailable, "", err), c, "auth")
		}
		return nil, in.logged(fault.New(fault.BadCredentials, "", err), c, "auth")
	}
	if fe := in.recordSignIn(ctx, mail, c, nil); fe != nil {
		return nil, fe
	}
	in.Log.Info("sign-in", "via", c.Via, "remote", c.RemoteAddr, "dn", p.DN, "agency", p.Agency)
	return p, nil
}

// Sender checks that from is the signed-in practitioner and that they may still send.
func (in *Intake) Sender(ctx context.Context, p *directory.Practitioner, from string, c Client) error {
	if p == nil {
		return in.logged(fault.New(fault.AuthRequired, "", nil), c, "mail")
	}
	if NormalizeMail(from) != p.Mail {
		return in.logged(fault.New(fault.SenderMismatch, "", nil), c, "mail")
	}
	// Look the sender up again: sign-in may be minutes old and the entry may have changed.
	cur, err := in.Dir.Lookup(ctx, p.Mail)
	if err != nil {
		return in.logged(in.lookupFault(err, "sender"), c, "mail")
	}
	if err := cur.Standing(in.Now()); err != nil {
		return in.logged(fault.New(fault.NotPermitted, standingSentence("You", err), err), c, "mail")
	}
	return nil
}

// Recipient checks that rcpt is a practitioner some directory knows and who may receive.
func (in *Intake) Recipient(ctx context.Context, p *directory.Practitioner, rcpt string, c Client) error {
	mail := NormalizeMail(rcpt)
	if mail == "" {
		return in.logged(fault.New(fault.BadCommand, "The recipient address is malformed.", nil), c, "rcpt")
	}
	r, err := in.Dir.Lookup(ctx, mail)
	if err != nil {
		return in.logged(in.lookupFault(err, "recipient"), c, "rcpt")
	}
	if err := r.Standing(in.Now()); err != nil {
		return in.logged(fault.New(fault.NotPermitted, standingSentence("This recipient", err), err), c, "rcpt")
	}
	return nil
}

func (in *Intake) lookupFault(err error, who string) *fault.Error {
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		return fault.New(fault.DirectoryUnavailable, "", err)
	case errors.Is(err, directory.ErrNotFound) && who == "recipient":
		return fault.New(fault.UnknownRecipient, "", err)
	case errors.Is(err, directory.ErrNotFound):
		return fault.New(fault.NotPermitted, "Your entry is no longer in the agency directory, so you cannot send.", err)
	case errors.Is(err, directory.ErrAmbiguous):
		return fault.New(fault.NotPermitted, "More than one directory entry has this address; the agency administrator must correct it before mail can pass.", err)
	}
	return fault.New(fault.DirectoryUnavailable, "", err)
}

func standingSentence(subject string, err error) string {
	switch {
	case errors.Is(err, directory.ErrDisabled):
		return subject + " cannot send or receive through the gateway: the directory account is disabled."
	case errors.Is(err, directory.ErrVettingLapsed):
		return subject + " cannot send or receive through the gateway: the vetting checks have lapsed and must be renewed by the agency."
	}
	return subject + " may not use the gateway."
}

// Accept checks the content and commits it durably. It returns the message ID the sender can quote;
// it returns only after the commit.
func (in *Intake) Accept(ctx context.Context, s *Submission) (string, error) {
	if err := CheckContent(s.Content); err != nil {
		return "", in.logged(err, s.Client, "data")
	}
	s.Recipients = uniqueMails(s.Recipients) // a recipient named twice gets one copy and one decision
	opened, ferr := in.openSMIME(ctx, s)
	if ferr != nil {
		return "", in.logged(ferr, s.Client, "data")
	}
	received := s.Content
	s.Content = opened.Content // the package inside any S/MIME layers is what is stored and delivered
	if IsMDN(s.Content) {
		return in.acceptMDN(ctx, s) // a read receipt, not a package (mdn.go)
	}
	at := in.Now().UTC()
	id := mailbox.NewRecordID()
	m := &mailbox.Incoming{
		ID:         id,
		Sender:     s.Sender.Mail,
		SenderDN:   s.Sender.DN,
		Agency:     s.Sender.Agency,
		Recipients: lowerAll(s.Recipients),
		Via:        s.Client.Via,
		RemoteAddr: s.Client.RemoteAddr,
		ReceivedAt: at,
		Content:    s.Content, // Digest left zero: the store takes it from the bytes it seals
	}
	// The store starts taking the content's digest while the package is read and decided (on two
	// cores it is then off the path to the reply); the seal follows in AcceptPrepared. A package
	// that is refused, or that changes its episode (stored by AcceptPackage), wastes that hash.
	ps, preparing := in.Store.(preparingStore)
	var prep *mailbox.Prepared
	if preparing {
		prep = ps.PrepareAccept(m)
		defer prep.Wait() // the content's bytes go back to the front door when Accept returns
	}
	p, ferr := in.readPackage(s)
	if ferr != nil {
		return "", in.logged(ferr, s.Client, "data")
	}
	if changesEpisode(p) {
		// Operations, consent, decisions and the package: one transaction (episodeops.go).
		if ferr := in.acceptChanges(ctx, s, p, m); ferr != nil {
			return "", in.logged(ferr, s.Client, "data")
		}
	} else {
		pd, ferr := in.decide(ctx, s, p, at)
		if ferr != nil {
			return "", in.logged(ferr, s.Client, "data")
		}
		// The package and its decisions are one transaction.
		var err error
		if preparing {
			err = ps.AcceptPrepared(ctx, prep, pd)
		} else {
			err = in.acceptDecided(ctx, m, pd)
		}
		if err != nil {
			return "", in.logged(storeFault(err), s.Client, "data")
		}
	}
	if in.OnAccepted != nil {
		in.OnAccepted()
	}
	in.Log.Info("accepted", "id", id, "via", s.Client.Via, "remote", s.Client.RemoteAddr,
		"sender_dn", s.Sender.DN, "recipients", len(s.Recipients), "size", len(received),
		"signed", opened.Signed, "encrypted", opened.Encrypted, "signer_sha256", opened.SignerFP)
	return id, nil
}

func uniqueMails(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if m := NormalizeMail(x); !seen[m] {
			seen[m] = true
			out = append(out, x)
		}
	}
	return out
}

func lowerAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = NormalizeMail(x)
	}
	return out
}

// logged writes the error's log face (ID, kind, cause) and returns it for the client.
func (in *Intake) logged(e *fault.Error, c Client, stage string) *fault.Error {
	lvl := slog.LevelInfo
	if e.Kind == fault.Internal || e.Kind == fault.StoreUnavailable || e.Kind == fault.StoreFull ||
		e.Kind == fault.DirectoryUnavailable || e.Kind == fault.AuthDirectoryUnavailable {
		lvl = slog.LevelWarn
	}
	attrs := []any{"id", e.ID, "kind", e.Face().Type, "stage", stage, "via", c.Via, "remote", c.RemoteAddr}
	if e.Cause != nil {
		attrs = append(attrs, "cause", e.Cause.Error())
	}
	in.Log.Log(context.Background(), lvl, "refused", attrs...)
	return e
}
