package mailbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// mdn builds a read receipt from from about original, optionally inside multipart/signed.
func mdn(from, original, disposition string, signed bool) []byte {
	report := fmt.Sprintf("Content-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n"+
		"--R\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n"+
		"--R\r\nContent-Type: message/disposition-notification\r\n\r\n"+
		"Reporting-UA: Thunderbird\r\nFinal-Recipient: rfc822;%s\r\nOriginal-Message-ID: %s\r\nDisposition: %s\r\n"+
		"--R--\r\n", from, original, disposition)
	head := fmt.Sprintf("From: %s\r\nTo: alice@agency.example\r\nSubject: Read: x\r\nMessage-ID: <mdn-%d@client>\r\nMIME-Version: 1.0\r\n",
		from, len(original)+len(disposition)+len(from))
	if !signed {
		return []byte(head + report)
	}
	return []byte(head + "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"S\"\r\n\r\n" +
		"--S\r\n" + report + "\r\n--S\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--S--\r\n")
}

func TestParseMDN(t *testing.T) {
	for _, signed := range []bool{false, true} {
		m, ok := ParseMDN(mdn("Bob@Council.example", "<pkg-1@cafgate.test>", "manual-action/MDN-sent-manually; displayed", signed))
		if !ok || m.OriginalMessageID != "<pkg-1@cafgate.test>" || m.FinalRecipient != "bob@council.example" || m.Type != "displayed" ||
			m.Disposition != "manual-action/MDN-sent-manually; displayed" {
			t.Errorf("signed=%v: %+v %v", signed, m, ok)
		}
	}
	if m, ok := ParseMDN(mdn("bob@council.example", "<a@b>", "automatic-action/MDN-sent-automatically; deleted/error", false)); !ok || m.Type != "deleted" {
		t.Errorf("deleted: %+v %v", m, ok)
	}
	for _, s := range []string{"", "Subject: x\r\n\r\nplain", string(hostedMsg("x", "y")),
		"Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n--R\r\n\r\n--R--\r\n"} {
		if _, ok := ParseMDN([]byte(s)); ok {
			t.Errorf("%q taken for an MDN", s)
		}
	}
}

func TestDeliveredReceiptRecordsRead(t *testing.T) {
	s := openTest(t, testOpts(t))
	// Alice's package reached Bob's hosted mailbox; Bob's client sends a read receipt to Alice, also hosted.
	deliver(t, s, &Delivery{MessageID: "PKG-A", Recipient: "bob@council.example", Content: hostedMsg("pkg-a", "x")})
	cases := []struct {
		from, final, disp string
		signed, want      bool
	}{
		{"carol@council.example", "carol@council.example", "manual-action/MDN-sent-manually; displayed", false, false}, // Carol never got it
		{"carol@council.example", "bob@council.example", "manual-action/MDN-sent-manually; displayed", false, false},   // forged for Bob
		{"bob@council.example", "bob@council.example", "manual-action/MDN-sent-manually; deleted", false, false},       // not a read
		{"bob@council.example", "bob@council.example", "manual-action/MDN-sent-manually; displayed", true, true},
	}
	for i, c := range cases {
		d := deliver(t, s, &Delivery{MessageID: fmt.Sprint("MDN", i), Recipient: "alice@agency.example", From: c.from,
			Content: mdn(c.final, "<pkg-a@cafgate.test>", c.disp, c.signed), Key: fmt.Sprint("k", i)})
		if d.Read != c.want {
			t.Errorf("case %d: read %v, want %v", i, d.Read, c.want)
		}
	}
	ev := events(t, s, "read")
	if len(ev) != 1 || !strings.HasPrefix(ev[0], `PKG-A {"recipient":"bob@council.example","disposition":"manual-action/MDN-sent-manually; displayed"}`) {
		t.Fatalf("read events %q", ev)
	}
}

func TestRecordReadTxThroughTheQueue(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	if err := s.Accept(ctx, msg("PKG-Q", body(1))); err != nil {
		t.Fatal(err)
	}
	content := []byte("From: alice@agency.example\r\nTo: bob@council.example\r\nMessage-ID: <q-copy@cafgate.test>\r\n\r\nsealed\r\n")
	if _, err := s.Enqueue(ctx, &Outbound{MessageID: "PKG-Q", From: "alice@agency.example", Recipient: "Bob@Council.example", Content: content}); err != nil {
		t.Fatal(err)
	}
	m, ok := ParseMDN(mdn("bob@council.example", "<q-copy@cafgate.test>", "manual-action/MDN-sent-manually; displayed", false))
	if !ok {
		t.Fatal("not an MDN")
	}
	for _, c := range []struct {
		from string
		want bool
	}{{"carol@council.example", false}, {"bob@council.example", true}} {
		var got bool
		err := s.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			got, err = s.RecordReadTx(ctx, tx, time.Now(), c.from, m)
			return err
		})
		if err != nil || got != c.want {
			t.Errorf("from %s: %v %v, want %v", c.from, got, err, c.want)
		}
	}
	if ev := events(t, s, "read"); len(ev) != 1 || !strings.HasPrefix(ev[0], "PKG-Q ") {
		t.Fatalf("read events %q", ev)
	}
}

func TestMDNOriginalTx(t *testing.T) {
	s := openTest(t, testOpts(t))
	ctx := context.Background()
	if err := s.Accept(ctx, msg("PKG-O", body(2))); err != nil {
		t.Fatal(err)
	}
	content := []byte("From: alice@agency.example\r\nTo: bob@council.example\r\nMessage-ID: <o-copy@cafgate.test>\r\n\r\nsealed\r\n")
	if _, err := s.Enqueue(ctx, &Outbound{MessageID: "PKG-O", From: "alice@agency.example", Recipient: "bob@council.example", Content: content}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, original string
		want           bool
	}{
		{"Bob@Council.example", "<o-copy@cafgate.test>", true},
		{"carol@health.example", "<o-copy@cafgate.test>", false}, // a recipient of the package, not of this copy
		{"bob@council.example", "<other@cafgate.test>", false},
		{"bob@council.example", "", false},
	} {
		var got *MDNOriginal
		err := s.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			got, err = s.MDNOriginalTx(ctx, tx, c.from, &MDN{OriginalMessageID: c.original, Type: "displayed"})
			return err
		})
		if err != nil || (got != nil) != c.want || (got != nil && (got.MessageID != "PKG-O" || got.Sender != "alice@agency.example")) {
			t.Errorf("%s about %s: %+v %v, want found=%v", c.from, c.original, got, err, c.want)
		}
	}
}
