package mailbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hostedMsg is a small message with a Message-ID and a marker to look for at rest.
func hostedMsg(id, marker string) []byte {
	return []byte(fmt.Sprintf("From: alice@agency.example\r\nTo: bob@council.example\r\nSubject: %s\r\n"+
		"Message-ID: <%s@cafgate.test>\r\nDate: Tue, 4 Mar 2025 05:06:07 +0000\r\n\r\nbody %s\r\n", marker, id, marker))
}

func deliver(t *testing.T, s *Store, d *Delivery) *Delivered {
	t.Helper()
	out, err := s.DeliverToMailbox(context.Background(), d)
	if err != nil {
		t.Fatalf("DeliverToMailbox: %v", err)
	}
	return out
}

func events(t *testing.T, s *Store, typ string) []string {
	t.Helper()
	rows, err := rawDB(t, s.opt.Path).Query(`SELECT coalesce(message_id, ''), data FROM ledger_events WHERE type = ? ORDER BY seq`, typ)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, data string
		if err := rows.Scan(&id, &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, id+" "+data)
	}
	return out
}

func TestHostedUserDefaultFolders(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	for i := 0; i < 2; i++ { // the second call must not duplicate anything
		h, err := s.HostedUser(ctx, " Bob@Council.Example ")
		if err != nil {
			t.Fatal(err)
		}
		if h.Mail() != "bob@council.example" {
			t.Fatalf("mail %q", h.Mail())
		}
		fs, err := h.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range fs {
			got[f.Name] = f.SpecialUse
			if f.UIDValidity == 0 || f.UIDNext != 1 {
				t.Errorf("%s: uidvalidity %d uidnext %d", f.Name, f.UIDValidity, f.UIDNext)
			}
		}
		if len(got) != len(DefaultFolders) {
			t.Fatalf("folders %v", got)
		}
		for _, d := range DefaultFolders {
			if use, ok := got[d.Name]; !ok || use != d.SpecialUse {
				t.Errorf("folder %s: %q, %v", d.Name, use, ok)
			}
		}
	}
	if _, err := s.HostedUser(ctx, "not-an-address"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad address: %v", err)
	}
}

func TestDeliverToMailbox(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	content := hostedMsg("m1", "SECRET-MARKER-1")
	d := deliver(t, s, &Delivery{MessageID: "PKG1", Recipient: "Bob@Council.example", Content: content})
	if d.UID != 1 || d.Folder != Inbox || d.Recipient != "bob@council.example" || d.Read {
		t.Fatalf("delivered %+v", d)
	}
	d2 := deliver(t, s, &Delivery{MessageID: "PKG2", Recipient: "bob@council.example", Content: hostedMsg("m2", "x")})
	if d2.UID != 2 || d2.UIDValidity != d.UIDValidity {
		t.Fatalf("second delivery %+v", d2)
	}
	h, _ := s.HostedUser(ctx, "bob@council.example")
	inbox, _ := h.Folder(ctx, "inbox")
	got, err := h.Content(ctx, inbox.ID, 1)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("content %q, %v", got, err)
	}
	head, err := h.Header(ctx, inbox.ID, 1)
	if err != nil || !bytes.HasSuffix(head, []byte("\r\n\r\n")) || bytes.Contains(head, []byte("body")) {
		t.Fatalf("header %q, %v", head, err)
	}
	ev := events(t, s, "delivered")
	if len(ev) != 2 || !strings.HasPrefix(ev[0], `PKG1 {"recipient":"bob@council.example","mailbox":"INBOX"}`) {
		t.Fatalf("delivered events %q", ev)
	}
	// At rest: neither the marker nor the header is stored in clear anywhere in the file.
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM imap_contents WHERE instr(content, 'SECRET-MARKER-1') > 0 OR instr(header, 'SECRET-MARKER-1') > 0`); n != 0 {
		t.Fatal("content stored in clear")
	}
	// The same Message-ID again is refused and stores nothing.
	_, err = s.DeliverToMailbox(ctx, &Delivery{MessageID: "PKG1", Recipient: "bob@council.example", Content: content})
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if n := len(events(t, s, "delivered")); n != 2 {
		t.Fatalf("%d delivered events after a duplicate", n)
	}
	st, _ := h.FolderStatus(ctx, Inbox)
	if st.Messages != 2 || st.Unseen != 2 || st.Size != int64(len(content)+len(hostedMsg("m2", "x"))) {
		t.Fatalf("status %+v", st)
	}
}

func TestDeliverToMailboxTxRollsBack(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	boom := errors.New("later step failed")
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.DeliverToMailboxTx(ctx, tx, time.Now(), &Delivery{MessageID: "P", Recipient: "bob@council.example",
			Content: hostedMsg("r1", "x")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx: %v", err)
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM imap_messages`) + count(t, db, `SELECT count(*) FROM imap_users`); n != 0 {
		t.Fatalf("%d rows after rollback", n)
	}
	if n := len(events(t, s, "delivered")); n != 0 {
		t.Fatalf("%d events after rollback", n)
	}
	// And the same delivery afterwards succeeds: the rollback left no dedupe key behind.
	deliver(t, s, &Delivery{MessageID: "P", Recipient: "bob@council.example", Content: hostedMsg("r1", "x")})
}

func TestHostedFlagsExpungeCopyMove(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		deliver(t, s, &Delivery{MessageID: fmt.Sprint("P", i), Recipient: "bob@council.example", Content: hostedMsg(fmt.Sprint("f", i), "x")})
	}
	h, _ := s.HostedUser(ctx, "bob@council.example")
	inbox, _ := h.Folder(ctx, Inbox)
	ch, err := h.StoreFlags(ctx, inbox.ID, []uint32{1, 2, 99}, FlagsAdd, []string{`\seen`, "$Label1", `\Recent`})
	if err != nil || len(ch) != 2 || !sameFlags(ch[1], []string{"$Label1", `\Seen`}) {
		t.Fatalf("add: %v %v", ch, err)
	}
	if ch, err = h.StoreFlags(ctx, inbox.ID, []uint32{1}, FlagsAdd, []string{`\Seen`}); err != nil || len(ch) != 0 {
		t.Fatalf("no-op add reported a change: %v %v", ch, err)
	}
	if _, err := h.StoreFlags(ctx, inbox.ID, []uint32{1}, FlagsAdd, []string{`\Bogus`}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown system flag: %v", err)
	}
	if ch, _ = h.StoreFlags(ctx, inbox.ID, []uint32{2}, FlagsSet, []string{`\Deleted`}); !sameFlags(ch[2], []string{`\Deleted`}) {
		t.Fatalf("set: %v", ch)
	}
	// Copy message 2 to Archive before expunging it: the stored copy must survive.
	cp, err := h.Copy(ctx, inbox.ID, []uint32{2, 3}, "Archive", false)
	if err != nil || len(cp.Dest) != 2 || cp.Dest[0] != 1 || cp.Source[1] != 3 {
		t.Fatalf("copy %+v %v", cp, err)
	}
	gone, err := h.Expunge(ctx, inbox.ID, nil)
	if err != nil || len(gone) != 1 || gone[0] != 2 {
		t.Fatalf("expunge %v %v", gone, err)
	}
	arch, _ := h.Folder(ctx, "Archive")
	if b, err := h.Content(ctx, arch.ID, 1); err != nil || !bytes.Contains(b, []byte("f2@")) {
		t.Fatalf("copied content after expunge of the original: %v", err)
	}
	// Move the Archive copy of 2 to Trash, expunge it there: the content is purged.
	mv, err := h.Copy(ctx, arch.ID, []uint32{1}, "Trash", true)
	if err != nil || len(mv.Dest) != 1 {
		t.Fatalf("move %+v %v", mv, err)
	}
	if snap, _ := h.Snapshot(ctx, arch.ID); len(snap.Messages) != 1 || snap.Messages[0].UID != 2 {
		t.Fatalf("archive after move: %+v", snap.Messages)
	}
	trash, _ := h.Folder(ctx, "Trash")
	if _, err := h.Copy(ctx, trash.ID, nil, "Trash", true); !errors.Is(err, ErrMailboxCannot) {
		t.Fatalf("move to itself: %v", err)
	}
	db := rawDB(t, s.opt.Path)
	if n := count(t, db, `SELECT count(*) FROM imap_contents WHERE content IS NULL`); n != 0 {
		t.Fatalf("%d purged copies while every message is still in a folder", n)
	}
	// UID EXPUNGE of a UID without \Deleted removes nothing; the moved copy kept its \Deleted flag.
	if gone, _ := h.Expunge(ctx, arch.ID, []uint32{2}); len(gone) != 0 {
		t.Fatalf("expunged without \\Deleted: %v", gone)
	}
	if gone, _ := h.Expunge(ctx, trash.ID, []uint32{mv.Dest[0]}); len(gone) != 1 {
		t.Fatalf("uid expunge: %v", gone)
	}
	if n := count(t, db, `SELECT count(*) FROM imap_contents WHERE content IS NULL AND header IS NULL`); n != 1 {
		t.Fatalf("%d purged copies, want 1", n)
	}
	// The purged copy still refuses a redelivery of the same message.
	if _, err := s.DeliverToMailbox(ctx, &Delivery{MessageID: "P2", Recipient: "bob@council.example", Content: hostedMsg("f2", "x")}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("redelivery after purge: %v", err)
	}
}

func TestHostedFolders(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	h, _ := s.HostedUser(ctx, "bob@council.example")
	for _, c := range []struct {
		op, a, b string
		want     error
	}{
		{"create", "Cases/2025/Smith", "", nil},
		{"create", "Cases", "", ErrMailboxExists},
		{"create", "inbox", "", ErrMailboxExists},
		{"create", "bad*name", "", ErrMailboxName},
		{"create", "a//b", "", ErrMailboxName},
		{"create", "tab\there", "", ErrMailboxName},
		{"delete", "INBOX", "", ErrMailboxCannot},
		{"delete", "Sent", "", ErrMailboxCannot},
		{"delete", "Cases", "", ErrMailboxCannot},
		{"delete", "Nope", "", ErrNoMailbox},
		{"rename", "INBOX", "Old", ErrMailboxCannot},
		{"rename", "Cases", "Cases/inner", ErrMailboxCannot},
		{"rename", "Cases", "Sent", ErrMailboxExists},
		{"rename", "Cases", "Work/Cäses", nil},
		{"delete", "Work/Cäses/2025/Smith", "", nil},
	} {
		var err error
		switch c.op {
		case "create":
			err = h.CreateFolder(ctx, c.a, "")
		case "delete":
			err = h.DeleteFolder(ctx, c.a)
		case "rename":
			err = h.RenameFolder(ctx, c.a, c.b)
		}
		if (c.want == nil && err != nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s %q %q: %v, want %v", c.op, c.a, c.b, err, c.want)
		}
	}
	fs, _ := h.Folders(ctx)
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	want := "Archive Drafts INBOX Junk Sent Trash Work Work/Cäses Work/Cäses/2025"
	if strings.Join(names, " ") != want {
		t.Fatalf("folders %q, want %q", strings.Join(names, " "), want)
	}
	if err := h.SetSubscribed(ctx, "Work", false); err != nil {
		t.Fatal(err)
	}
	if f, _ := h.Folder(ctx, "Work"); f.Subscribed {
		t.Fatal("still subscribed")
	}
	if _, err := h.Append(ctx, "INBOX", hostedMsg("a", "x"), nil, time.Time{}); !errors.Is(err, ErrMailboxCannot) {
		t.Fatalf("append to INBOX: %v", err)
	}
	ap, err := h.Append(ctx, "Sent", hostedMsg("a", "x"), []string{`\Seen`}, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil || ap.UID != 1 || ap.Folder != "Sent" {
		t.Fatalf("append: %+v %v", ap, err)
	}
	infos, err := h.MessageInfos(ctx, ap.FolderID, 1, 1)
	if err != nil || len(infos) != 1 || infos[0].InternalDate.Year() != 2020 || !HasFlag(infos[0].Flags, `\seen`) {
		t.Fatalf("infos %+v %v", infos, err)
	}
	// A deleted folder created again gets a new UIDVALIDITY.
	if err := h.CreateFolder(ctx, "Again", ""); err != nil {
		t.Fatal(err)
	}
	f1, _ := h.Folder(ctx, "Again")
	if err := h.DeleteFolder(ctx, "Again"); err != nil {
		t.Fatal(err)
	}
	_ = h.CreateFolder(ctx, "Again", "")
	if f2, _ := h.Folder(ctx, "Again"); f2.UIDValidity <= f1.UIDValidity {
		t.Fatalf("uidvalidity %d then %d", f1.UIDValidity, f2.UIDValidity)
	}
}

func TestHostedUsersAreIsolated(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	deliver(t, s, &Delivery{Recipient: "bob@council.example", Content: hostedMsg("iso", "BOBS")})
	bob, _ := s.HostedUser(ctx, "bob@council.example")
	eve, _ := s.HostedUser(ctx, "eve@council.example")
	bobInbox, _ := bob.Folder(ctx, Inbox)
	if _, err := eve.Snapshot(ctx, bobInbox.ID); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("snapshot of another user's folder: %v", err)
	}
	if _, err := eve.Content(ctx, bobInbox.ID, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("content of another user's message: %v", err)
	}
	if _, err := eve.StoreFlags(ctx, bobInbox.ID, []uint32{1}, FlagsAdd, []string{`\Seen`}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("flags on another user's message: %v", err)
	}
	if _, err := eve.Copy(ctx, bobInbox.ID, []uint32{1}, "Archive", false); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("copy from another user's folder: %v", err)
	}
	if _, err := eve.Expunge(ctx, bobInbox.ID, nil); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("expunge of another user's folder: %v", err)
	}
	if _, err := eve.MessageInfos(ctx, bobInbox.ID, 1, 10); err != nil {
		t.Fatal(err)
	} else if infos, _ := eve.MessageInfos(ctx, bobInbox.ID, 1, 10); len(infos) != 0 {
		t.Errorf("infos of another user's messages: %d", len(infos))
	}
}

func TestHostedContentTamperDetected(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	deliver(t, s, &Delivery{Recipient: "bob@council.example", Content: hostedMsg("t1", "one")})
	deliver(t, s, &Delivery{Recipient: "bob@council.example", Content: hostedMsg("t2", "two")})
	db := rawDB(t, s.opt.Path)
	// Swap the two rows' sealed content: each still decrypts under the key, but not under its row's ID.
	_, err := db.Exec(`UPDATE imap_contents SET content = (SELECT content FROM imap_contents c2 WHERE c2.id <> imap_contents.id),
		content_nonce = (SELECT content_nonce FROM imap_contents c2 WHERE c2.id <> imap_contents.id)`)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := s.HostedUser(ctx, "bob@council.example")
	inbox, _ := h.Folder(ctx, Inbox)
	if _, err := h.Content(ctx, inbox.ID, 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped content: %v", err)
	}
	if _, err := h.Header(ctx, inbox.ID, 1); err != nil {
		t.Fatalf("header (untouched): %v", err)
	}
}

func TestNotifier(t *testing.T) {
	n := NewNotifier()
	ch, stop := n.Watch("Bob@x.example")
	n.Notify("bob@x.example")
	n.Notify("bob@x.example") // merges with the first; must not block
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no notification")
	}
	select {
	case <-ch:
		t.Fatal("two notifications did not merge")
	default:
	}
	n.Notify("carol@x.example")
	select {
	case <-ch:
		t.Fatal("woken by another user's notification")
	default:
	}
	stop()
	if n.Watchers("bob@x.example") != 0 {
		t.Fatal("watcher left behind")
	}
	var nilN *Notifier
	nilN.Notify("bob@x.example")
}
