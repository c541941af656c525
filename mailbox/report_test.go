package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"cafgate/directory"
	"cafgate/mailbox/ledger"
	"cafgate/policy"
)

// hostedSet is a local route's hosted test, with the notifications it was given.
type hostedSet struct {
	mu    sync.Mutex
	mails map[string]bool
	told  []string
}

func (h *hostedSet) hosted(m string) bool { return h.mails[strings.ToLower(m)] }
func (h *hostedSet) notify(m string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.told = append(h.told, m)
}

// inbox returns the contents of mail's hosted INBOX, oldest first.
func inbox(t *testing.T, s *Store, who string) [][]byte {
	t.Helper()
	ctx := context.Background()
	h, err := s.HostedUser(ctx, who)
	if err != nil {
		return nil
	}
	f, err := h.Folder(ctx, Inbox)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := h.MessageInfos(ctx, f.ID, 1, 1<<31)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, i := range infos {
		c, err := h.Content(ctx, f.ID, i.UID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// acceptDecided accepts id from sender to rcpts with the decisions for pkg, as intake does.
func acceptDecided(t *testing.T, s *Store, at time.Time, id string, sender *directory.Practitioner, rcpts []*directory.Practitioner, pkg policy.Package) *PackageDecision {
	t.Helper()
	ctx := context.Background()
	var to []Addressee
	var mails []string
	for _, r := range rcpts {
		to = append(to, Addressee{r.Mail, r})
		mails = append(mails, r.Mail)
	}
	pd, err := s.DecidePackage(ctx, at, sender, to, pkg)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("Subject: " + pkg.EpisodeRef + "\r\n\r\nCHILD-NAME-MARKER section text\r\n")
	in := &Incoming{ID: id, Sender: sender.Mail, SenderDN: sender.DN, Agency: sender.Agency, Recipients: mails,
		Via: "submission", RemoteAddr: "192.0.2.1:5555", ReceivedAt: at, Digest: sha256.Sum256(content), Content: content}
	if err := s.Accept(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDecisions(ctx, id, pd); err != nil {
		t.Fatal(err)
	}
	return pd
}

func finish(t *testing.T, s *Store, step DeliveryStep) {
	t.Helper()
	if done, err := s.FinishDelivery(context.Background(), step); err != nil || !done {
		t.Fatalf("FinishDelivery %s: %v %v", step.Recipient, done, err)
	}
}

func TestReportSentOnceEveryRecipientIsFinal(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	hs := &hostedSet{mails: map[string]bool{pHarriet.Mail: true, pGwen.Mail: true}}
	s.RouteLocally(hs.hosted, hs.notify)
	pkg := policy.Package{EpisodeRef: ep.Ref, Sender: pHarriet.Mail,
		Sections: []policy.Section{policy.SectionChildsDetails, policy.SectionFamilyAndEnvironment}}
	at := clk.Now().UTC()
	acceptDecided(t, s, at, "m1", pHarriet, []*directory.Practitioner{pRita, pSam, pGwen}, pkg)
	opt := ReportOptions{Hostname: "gw.cafgate.test"}

	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pRita.Mail, State: StateRefused, At: at})
	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pSam.Mail, State: StateRefused, At: at})
	if n, err := s.SendReports(ctx, opt); n != 0 || err != nil {
		t.Fatalf("report sent while gwen is pending: %d %v", n, err)
	}
	copyMsg := []byte("Message-ID: <m1.copy@gw.cafgate.test>\r\nSubject: x\r\n\r\nsealed\r\n")
	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pGwen.Mail, State: StateDelivered, At: at,
		EventType: ledger.Encrypted, EventData: EncryptedEvent(pGwen.Mail, strings.Repeat("ab", 32), []policy.Section{policy.SectionChildsDetails}),
		Hosted: &Delivery{MessageID: "m1", Recipient: pGwen.Mail, Content: copyMsg}})
	if n, err := s.SendReports(ctx, opt); n != 1 || err != nil {
		t.Fatalf("SendReports: %d %v", n, err)
	}
	if n, err := s.SendReports(ctx, opt); n != 0 || err != nil {
		t.Fatalf("second SendReports: %d %v", n, err)
	}
	got := inbox(t, s, pHarriet.Mail)
	if len(got) != 1 {
		t.Fatalf("%d messages in the sender's mailbox, want the one report", len(got))
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM queue`); n != 0 {
		t.Fatalf("%d queue entries: the report to a hosted sender must not go to the relay", n)
	}
	if strings.Join(hs.told, ",") != pHarriet.Mail {
		t.Errorf("watchers told %v", hs.told)
	}
	raw := got[0]
	if bytes.Contains(raw, []byte("CHILD-NAME-MARKER")) {
		t.Fatal("package content in the report")
	}
	text, proofs := readReport(t, raw)
	for _, want := range []string{
		pRita.Mail + ": NOT sent: the family has refused consent to share with this recipient's agency",
		pSam.Mail + ": NOT sent: the family has refused consent to share with this person",
		pGwen.Mail + ": delivered: stored, encrypted to their certificate, in their mailbox on this gateway",
		"Sections withheld from " + pGwen.Mail + ": family and environment.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// The proofs: accepted, decisions, gwen's encrypted and delivered events, each valid under the ledger key.
	v, err := ledger.LoadVerifier(s.LedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range proofs {
		var pr ledger.Proof
		if err := pr.UnmarshalText(p); err != nil {
			t.Fatal(err)
		}
		if err := pr.Verify(v); err != nil {
			t.Fatalf("proof of event %d: %v", pr.Index, err)
		}
		ev, err := ledger.Decode(pr.Event)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
		if ev.Package != "m1" {
			t.Errorf("proof of an event of %q", ev.Package)
		}
	}
	if strings.Join(types, ",") != "accepted,decisions,encrypted,delivered" {
		t.Errorf("proved events %v", types)
	}
	if n := count(t, rawDB(t, s.opt.Path), `SELECT count(*) FROM ledger_events WHERE type = 'receipt' AND message_id = 'm1'`); n != 1 {
		t.Errorf("%d receipt events", n)
	}
}

// readReport returns the report's text for people and its attached proofs.
func readReport(t *testing.T, raw []byte) (string, [][]byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var text string
	var proofs [][]byte
	var walk func(ctype string, body io.Reader)
	walk = func(ctype string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(mt, "multipart/") {
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pt := p.Header.Get("Content-Type")
			b, _ := io.ReadAll(p)
			switch {
			case strings.HasPrefix(pt, "multipart/"):
				walk(pt, bytes.NewReader(b))
			case p.FileName() != "":
				if p.Header.Get("Content-Transfer-Encoding") == "base64" { // multipart does not decode base64
					dec := make([]byte, len(b))
					n, err := base64.StdEncoding.Decode(dec, b)
					if err != nil {
						t.Fatal(err)
					}
					b = dec[:n]
				}
				proofs = append(proofs, b)
			case strings.HasPrefix(pt, "text/plain") && text == "":
				text = string(b)
			}
		}
	}
	walk(m.Header.Get("Content-Type"), m.Body)
	return text, proofs
}

func TestReportToASenderNotHostedIsQueued(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	pkg := policy.Package{EpisodeRef: ep.Ref, Sender: pHarriet.Mail, Sections: []policy.Section{policy.SectionChildsDetails}}
	at := clk.Now().UTC()
	acceptDecided(t, s, at, "m1", pHarriet, []*directory.Practitioner{pRita}, pkg)
	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pRita.Mail, State: StateRefused, At: at})
	opt := ReportOptions{Hostname: "gw.cafgate.test", NoCheckpoint: true}
	if n, err := s.SendReports(ctx, opt); n != 0 || err != nil {
		t.Fatalf("a report sent before a checkpoint covers its events: %d %v", n, err)
	}
	opt.NoCheckpoint = false
	if n, err := s.SendReports(ctx, opt); n != 1 || err != nil {
		t.Fatalf("SendReports: %d %v", n, err)
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM queue WHERE kind = 'dsn' AND about = 'receipt' AND recipient = ? AND env_from = ''`, pHarriet.Mail); n != 1 {
		t.Fatalf("%d queued reports", n)
	}
}

func TestReportAtTheDeadlineWithRecipientsStillPending(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	hs := &hostedSet{mails: map[string]bool{pHarriet.Mail: true}}
	s.RouteLocally(hs.hosted, nil)
	pkg := policy.Package{EpisodeRef: ep.Ref, Sender: pHarriet.Mail, Sections: []policy.Section{policy.SectionChildsDetails}}
	at := clk.Now().UTC()
	acceptDecided(t, s, at, "m1", pHarriet, []*directory.Practitioner{pRita, pGwen}, pkg)
	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pRita.Mail, State: StateRefused, At: at})
	opt := ReportOptions{Hostname: "gw.cafgate.test", Deadline: time.Hour, NoCheckpoint: true}
	if n, _ := s.SendReports(ctx, opt); n != 0 {
		t.Fatal("report before the deadline")
	}
	clk.Advance(2 * time.Hour)
	if n, err := s.SendReports(ctx, opt); n != 1 || err != nil {
		t.Fatalf("at the deadline: %d %v", n, err)
	}
	text, _ := readReport(t, inbox(t, s, pHarriet.Mail)[0])
	if !strings.Contains(text, pGwen.Mail+": no outcome yet") || !strings.Contains(text, pRita.Mail+": NOT sent") ||
		!strings.Contains(text, "not yet covered by a checkpoint; ask for it later with cafgate ledger prove") {
		t.Errorf("report:\n%s", text)
	}
}

func TestLocalRouteDeliversADSNToAHostedSender(t *testing.T) {
	s, opt := qStore(t)
	ctx := context.Background()
	hs := &hostedSet{mails: map[string]bool{"alice@agency.example": true}}
	s.RouteLocally(hs.hosted, hs.notify)
	ids := qEnqueue(t, s, qOutbound("bob@council.example"))
	cs := qClaim(t, s, ClaimOptions{Domain: "council.example", Limit: 1, Now: opt.Now(), Lease: time.Minute})
	if len(cs) != 1 {
		t.Fatal("nothing claimed")
	}
	notice := qDSN(ids[0], "failed")
	notice.Recipient = "alice@agency.example"
	if err := s.Fail(ctx, cs[0].Lease, Outcome{Host: "mx.council.example", Answer: "550 5.1.1 no such user",
		Cause: CauseRejected, Notice: notice}); err != nil {
		t.Fatal(err)
	}
	got := inbox(t, s, "alice@agency.example")
	if len(got) != 1 || !bytes.Equal(got[0], notice.Content) {
		t.Fatalf("sender's mailbox holds %d messages", len(got))
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM queue WHERE kind = 'dsn'`); n != 0 {
		t.Fatalf("%d DSNs queued for the relay", n)
	}
	if strings.Join(hs.told, ",") != "alice@agency.example" {
		t.Errorf("told %v", hs.told)
	}
	// A package copy (kind message, no About) is never rerouted: the pipeline routes those itself.
	hs.mails["carol@health.example"] = true
	qEnqueue(t, s, qOutbound("carol@health.example"))
	if n := count(t, db, `SELECT count(*) FROM queue WHERE recipient = 'carol@health.example'`); n != 1 {
		t.Fatal("a package copy was rerouted")
	}
}

func TestOverrideNoticeToTheLead(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	hs := &hostedSet{mails: map[string]bool{pPriya.Mail: true}}
	s.RouteLocally(hs.hosted, hs.notify)
	if _, err := s.WithdrawConsent(ctx, ep.Ref, policy.GivenByParent, time.Time{}, pPriya.Mail); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	reason := "REASON-MARKER disclosure at school"
	pkg := policy.Package{EpisodeRef: ep.Ref, Sections: []policy.Section{policy.SectionChildsDetails}, Override: true, OverrideReason: reason}
	acceptDecided(t, s, clk.Now().UTC(), "m2", pHarriet, []*directory.Practitioner{pRita}, pkg)
	if n, err := s.SendOverrideNotices(ctx, "gw.cafgate.test"); n != 1 || err != nil {
		t.Fatalf("SendOverrideNotices: %d %v", n, err)
	}
	if n, err := s.SendOverrideNotices(ctx, "gw.cafgate.test"); n != 0 || err != nil {
		t.Fatalf("told twice: %d %v", n, err)
	}
	got := inbox(t, s, pPriya.Mail)
	if len(got) != 1 {
		t.Fatalf("%d messages for the lead", len(got))
	}
	text := string(got[0])
	for _, want := range []string{"Subject: Child protection override used in episode " + ep.Ref, "Who overrode:   " + pHarriet.Mail,
		"Reason code:    override", "Package:        m2", "    " + pRita.Mail} {
		if !strings.Contains(text, want) {
			t.Errorf("notice lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "REASON-MARKER") || strings.Contains(text, "CHILD-NAME-MARKER") {
		t.Error("the stated reason or package content is in the notice")
	}
	if o, _ := s.Overrides(ctx, true); len(o) != 0 {
		t.Errorf("still untold: %+v", o)
	}
}

func TestFirstReportWhenSomeAreRefusedAndTheRestIsSlow(t *testing.T) {
	s, clk, ep := seededRefusal(t)
	ctx := context.Background()
	hs := &hostedSet{mails: map[string]bool{pHarriet.Mail: true}}
	s.RouteLocally(hs.hosted, nil)
	pkg := policy.Package{EpisodeRef: ep.Ref, Sender: pHarriet.Mail, Sections: []policy.Section{policy.SectionChildsDetails}}
	at := clk.Now().UTC()
	acceptDecided(t, s, at, "m1", pHarriet, []*directory.Practitioner{pRita, pGwen}, pkg)
	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pRita.Mail, State: StateRefused, At: at})
	opt := ReportOptions{Hostname: "gw.cafgate.test"}
	if n, _ := s.SendReports(ctx, opt); n != 0 {
		t.Fatal("a first report before FirstAfter")
	}
	clk.Advance(3 * time.Minute)
	if n, err := s.SendReports(ctx, opt); n != 1 || err != nil {
		t.Fatalf("first report: %d %v", n, err)
	}
	if n, _ := s.SendReports(ctx, opt); n != 0 {
		t.Fatal("a second first report")
	}
	got := inbox(t, s, pHarriet.Mail)
	if len(got) != 1 || !bytes.Contains(got[0], []byte("Subject: First delivery report for package m1")) {
		t.Fatalf("after the first report: %d messages", len(got))
	}
	text, proofs := readReport(t, got[0])
	if !strings.Contains(text, pRita.Mail+": NOT sent: the family has refused consent to share with this recipient's agency") ||
		!strings.Contains(text, pGwen.Mail+": no outcome yet") || len(proofs) != 0 {
		t.Errorf("first report (%d proofs):\n%s", len(proofs), text)
	}
	finish(t, s, DeliveryStep{MessageID: "m1", Recipient: pGwen.Mail, State: StateDelivered, At: clk.Now(),
		Hosted: &Delivery{MessageID: "m1", Recipient: pGwen.Mail, Content: []byte("Message-ID: <c@x>\r\n\r\nsealed\r\n")}})
	if n, err := s.SendReports(ctx, opt); n != 1 || err != nil {
		t.Fatalf("full report: %d %v", n, err)
	}
	got = inbox(t, s, pHarriet.Mail)
	if len(got) != 2 || !bytes.Contains(got[1], []byte("Subject: Delivery report for package m1")) {
		t.Fatalf("after the full report: %d messages", len(got))
	}

	// Every recipient final within FirstAfter: only the full report.
	acceptDecided(t, s, clk.Now().UTC(), "m2", pHarriet, []*directory.Practitioner{pRita}, pkg)
	finish(t, s, DeliveryStep{MessageID: "m2", Recipient: pRita.Mail, State: StateRefused, At: clk.Now()})
	clk.Advance(10 * time.Minute)
	if n, err := s.SendReports(ctx, opt); n != 1 || err != nil {
		t.Fatalf("m2: %d %v", n, err)
	}
	if got := inbox(t, s, pHarriet.Mail); len(got) != 3 || bytes.Contains(got[2], []byte("First delivery report")) {
		t.Fatalf("m2 reports: %d", len(got))
	}
}
