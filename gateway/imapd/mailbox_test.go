package imapd

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestListStatusAndFolders(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(t, "bob@council.example", nil)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for _, l := range list {
		var attrs []string
		for _, a := range l.Attrs {
			attrs = append(attrs, string(a))
		}
		got[l.Mailbox] = strings.Join(attrs, " ")
		order = append(order, l.Mailbox)
	}
	want := map[string]string{"INBOX": `\HasNoChildren`, "Sent": `\Sent \HasNoChildren`, "Drafts": `\Drafts \HasNoChildren`,
		"Trash": `\Trash \HasNoChildren`, "Junk": `\Junk \HasNoChildren`, "Archive": `\Archive \HasNoChildren`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("LIST %s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) || order[0] != "INBOX" {
		t.Errorf("LIST: %v", order)
	}
	special, _ := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if len(special) != 5 {
		t.Errorf("LIST (SPECIAL-USE): %d folders", len(special))
	}
	if l, _ := c.List("", "", nil).Collect(); len(l) != 1 || l[0].Delim != '/' {
		t.Errorf("LIST \"\" \"\": %+v", l)
	}
	if l, _ := c.List("", "inbox", nil).Collect(); len(l) != 1 || l[0].Mailbox != "INBOX" {
		t.Errorf("LIST inbox: %+v", l)
	}
	if err := c.Create("Cases/Smith", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.List("", "Cases/%", nil).Collect(); len(l) != 1 || l[0].Mailbox != "Cases/Smith" {
		t.Errorf("LIST Cases/%%: %+v", l)
	}
	if err := c.Delete("INBOX").Wait(); imapCode(err) != imap.ResponseCodeCannot {
		t.Errorf("DELETE INBOX: %v", err)
	}
	if err := c.Create("Sent", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE Sent: %v", err)
	}
	if err := c.Rename("Cases", "Work", nil).Wait(); err != nil {
		t.Errorf("RENAME: %v", err)
	}
	if _, err := c.Select("Cases/Smith", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT renamed-away folder: %v", err)
	}
	e.deliver(t, "bob@council.example", message(1, "one"))
	e.deliver(t, "bob@council.example", message(2, "two"))
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, UIDValidity: true, Size: true}).Wait()
	if err != nil || *st.NumMessages != 2 || *st.NumUnseen != 2 || st.UIDNext != 3 || st.UIDValidity == 0 || *st.Size == 0 {
		t.Fatalf("STATUS: %+v %v", st, err)
	}
}

func TestFetchAndSeen(t *testing.T) {
	e := startEnv(t, nil)
	msg := message(1, "Review of =?utf-8?q?caf=C3=A9?= notes")
	e.deliver(t, "bob@council.example", msg)
	c := e.login(t, "bob@council.example", nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 || sel.UIDValidity == 0 || sel.UIDNext != 2 {
		t.Fatalf("SELECT: %+v %v", sel, err)
	}
	peek := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true,
		InternalDate: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: []*imap.FetchItemBodySection{peek}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v %v", msgs, err)
	}
	m := msgs[0]
	if m.UID != 1 || len(m.Flags) != 0 || m.RFC822Size != int64(len(msg)) || m.InternalDate.IsZero() {
		t.Errorf("FETCH metadata: %+v", m)
	}
	if m.Envelope == nil || m.Envelope.Subject != "Review of café notes" || m.Envelope.MessageID != "m1@cafgate.test" {
		t.Errorf("ENVELOPE: %+v", m.Envelope)
	}
	if bs, ok := m.BodyStructure.(*imap.BodyStructureSinglePart); !ok || bs.Type != "application" || bs.Subtype != "pkcs7-mime" {
		t.Errorf("BODYSTRUCTURE: %#v", m.BodyStructure)
	}
	if len(m.BodySection) != 1 || !bytes.Equal(m.BodySection[0].Bytes, msg) {
		t.Fatalf("BODY.PEEK[]: %d sections", len(m.BodySection))
	}
	// Header-only fetches decrypt only the header section, and give the same bytes.
	hdr, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, Peek: true},
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true},
		{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 4}}}}).Collect()
	if err != nil || len(hdr) != 1 || len(hdr[0].BodySection) != 3 {
		t.Fatalf("FETCH header: %v %v", hdr, err)
	}
	if h := hdr[0].BodySection[0].Bytes; !bytes.Equal(h, msg[:bytes.Index(msg, []byte("\r\n\r\n"))+4]) {
		t.Errorf("BODY[HEADER] %q", h)
	}
	if f := string(hdr[0].BodySection[1].Bytes); !strings.HasPrefix(f, "Subject: Review") || strings.Contains(f, "From:") {
		t.Errorf("BODY[HEADER.FIELDS (Subject)] %q", f)
	}
	if p := string(hdr[0].BodySection[2].Bytes); p != "From" {
		t.Errorf("BODY[]<0.4> %q", p)
	}
	// Reading without PEEK sets \Seen and says so in the same answer.
	got, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(got) != 1 || len(got[0].Flags) != 1 || got[0].Flags[0] != imap.FlagSeen {
		t.Fatalf("FETCH BODY[]: %+v %v", got, err)
	}
	// EXAMINE never sets \Seen.
	e.deliver(t, "bob@council.example", message(2, "two"))
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); imapCode(err) != "READ-ONLY" {
		t.Errorf("STORE after EXAMINE: %v", err)
	}
	st, _ := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait()
	if *st.NumUnseen != 1 {
		t.Errorf("unseen after EXAMINE and FETCH: %d", *st.NumUnseen)
	}
	if strings.Contains(e.logs.String(), "Review of") || strings.Contains(e.logs.String(), "TUlNRSBib2R5") {
		t.Fatalf("message content reached the log:\n%s", e.logs.String())
	}
}

func TestIdleHearsDelivery(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.IdlePoll = time.Hour }) // only the notifier can wake it in time
	exists := make(chan uint32, 4)
	c := e.login(t, "bob@council.example", &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		if d.NumMessages != nil {
			exists <- *d.NumMessages
		}
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.notifier.Watchers("bob@council.example") == 1 })
	time.Sleep(50 * time.Millisecond) // let IDLE reach the server
	start := time.Now()
	e.deliver(t, "bob@council.example", message(1, "new"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d", n)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("EXISTS after %s", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no EXISTS during IDLE after a delivery")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestCopyMoveAppendWithUIDPLUS(t *testing.T) {
	e := startEnv(t, nil)
	for i := 1; i <= 3; i++ {
		e.deliver(t, "bob@council.example", message(i, "m"))
	}
	expunged := make(chan uint32, 8)
	c := e.login(t, "bob@council.example", &imapclient.UnilateralDataHandler{Expunge: func(seq uint32) { expunged <- seq }})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	arch, _ := c.Status("Archive", &imap.StatusOptions{UIDValidity: true}).Wait()
	cp, err := c.Copy(imap.SeqSetNum(1, 3), "Archive").Wait()
	if err != nil || cp.UIDValidity != arch.UIDValidity || cp.SourceUIDs.String() != "1,3" || cp.DestUIDs.String() != "1:2" {
		t.Fatalf("COPY: %+v %v", cp, err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing folder: %v", err)
	}
	mv, err := c.Move(imap.UIDSetNum(2), "Trash").Wait()
	if err != nil || mv.SourceUIDs.String() != "2" || mv.DestUIDs.String() != "1" {
		t.Fatalf("MOVE: %+v %v", mv, err)
	}
	if seq := <-expunged; seq != 2 {
		t.Errorf("EXPUNGE after MOVE: %d", seq)
	}
	sent := []byte("From: bob@council.example\r\nSubject: sent copy\r\nMessage-ID: <s1@client>\r\n\r\nhello\r\n")
	ap := c.Append("Sent", int64(len(sent)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	ap.Write(sent)
	ap.Close()
	ad, err := ap.Wait()
	sentSt, _ := c.Status("Sent", &imap.StatusOptions{UIDValidity: true, NumMessages: true}).Wait()
	if err != nil || ad.UID != 1 || ad.UIDValidity != sentSt.UIDValidity || *sentSt.NumMessages != 1 {
		t.Fatalf("APPEND: %+v %v", ad, err)
	}
	for _, box := range []string{"INBOX", "Nope"} {
		ap := c.Append(box, int64(len(sent)), nil)
		ap.Write(sent)
		ap.Close()
		_, err := ap.Wait()
		if want := map[string]imap.ResponseCode{"INBOX": imap.ResponseCodeCannot, "Nope": imap.ResponseCodeTryCreate}[box]; imapCode(err) != want {
			t.Errorf("APPEND to %s: %v", box, err)
		}
	}
}

func TestStoreSearchExpungeAcrossSessions(t *testing.T) {
	e := startEnv(t, nil)
	for i := 1; i <= 4; i++ {
		e.deliver(t, "bob@council.example", message(i, []string{"", "alpha", "beta", "alpha beta", "gamma"}[i]))
	}
	a := e.login(t, "bob@council.example", nil)
	expunged := make(chan uint32, 8)
	flags := make(chan uint32, 8)
	b := e.login(t, "bob@council.example", &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { expunged <- seq },
		Fetch: func(m *imapclient.FetchMessageData) {
			flags <- m.SeqNum
			for m.Next() != nil {
			}
		}})
	for _, c := range []*imapclient.Client{a, b} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Store(imap.SeqSetNum(2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Urgent"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	search := func(c *imapclient.Client, cr *imap.SearchCriteria) string {
		t.Helper()
		d, err := c.Search(cr, nil).Wait()
		if err != nil {
			t.Fatalf("SEARCH %+v: %v", cr, err)
		}
		return d.All.String()
	}
	for _, c := range []struct {
		cr   imap.SearchCriteria
		want string
	}{
		{imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, "2:3"},
		{imap.SearchCriteria{Flag: []imap.Flag{"$urgent"}}, "2:3"},
		{imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, "1:4"},
		{imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "ALPHA"}}}, "1,3"},
		{imap.SearchCriteria{Not: []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "beta"}}}}}, "1,4"},
		{imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"number"}}, {Flag: []imap.Flag{imap.FlagDeleted}}}}}, ""},
		{imap.SearchCriteria{Text: []string{"gamma"}}, "4"},
		{imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(2, 4)}, Larger: 10}, "2,4"},
		{imap.SearchCriteria{SentSince: time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC), SentBefore: time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC)}, "1:4"},
	} {
		if got := search(a, &c.cr); got != c.want {
			t.Errorf("SEARCH %+v: %q, want %q", c.cr, got, c.want)
		}
	}
	// B hears of A's flag change at its next command.
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if got := []uint32{<-flags, <-flags}; got[0]+got[1] != 5 {
		t.Errorf("FETCH FLAGS seen by the other session for %v", got)
	}
	if err := a.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	gone, err := a.Expunge().Collect()
	if err != nil || len(gone) != 1 || gone[0] != 2 {
		t.Fatalf("EXPUNGE: %v %v", gone, err)
	}
	// B is told at a command that allows EXPUNGE, not during FETCH; there message 2 just answers nothing.
	if m, err := b.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil || len(m) != 0 {
		t.Errorf("FETCH of a message expunged elsewhere: %+v %v", m, err)
	}
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-expunged:
		if seq != 2 {
			t.Errorf("EXPUNGE %d", seq)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the other session was not told of the expunge")
	}
	if got := search(b, &imap.SearchCriteria{}); got != "1:3" {
		t.Errorf("SEARCH ALL after expunge: %q", got)
	}
	if d, err := b.UIDSearch(&imap.SearchCriteria{}, nil).Wait(); err != nil || d.All.String() != "1,3:4" {
		t.Errorf("UID SEARCH ALL: %v %v", d, err)
	}
}
