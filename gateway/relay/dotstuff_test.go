package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"cafgate/mailbox"
)

// TestWriteDotStuffed: the relay's own data writer sends what net/textproto's DotWriter (go-smtp's)
// sends for the same content, and a reader undoing the stuffing gets the content back.
func TestWriteDotStuffed(t *testing.T) {
	for _, content := range []string{
		"",
		"a\r\n",
		"Subject: x\r\n\r\n.\r\n..\r\n.hidden\r\nend",
		".first\r\nbare\nlf\n\r\n.",
		strings.Repeat("MIIB"+strings.Repeat("x", 72)+"\r\n", 1000),
	} {
		var ours, theirs bytes.Buffer
		w := bufio.NewWriter(&ours)
		if err := writeDotStuffed(w, []byte(content)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		tw := textproto.NewWriter(bufio.NewWriter(&theirs))
		dw := tw.DotWriter()
		io.WriteString(dw, content)
		dw.Close()
		// DotWriter ends empty content with an empty line; an empty message is just the dot.
		if content != "" && ours.String() != theirs.String() {
			t.Errorf("content %.40q: ours %.80q, DotWriter %.80q", content, ours.String(), theirs.String())
		}
		back, err := io.ReadAll(textproto.NewReader(bufio.NewReader(&ours)).DotReader())
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ReplaceAll(strings.ReplaceAll(content, "\r\n", "\n"), "\n", "\r\n")
		if want != "" && !strings.HasSuffix(want, "\r\n") {
			want += "\r\n"
		}
		if got := strings.ReplaceAll(string(back), "\n", "\r\n"); got != want {
			t.Errorf("content %.40q read back as %.80q", content, got)
		}
	}
}

// TestRefusedAtTheEndOfTheData: answers to the end of the data count like answers to RCPT (a 4xx is
// retried, a 5xx bounces at once), and the session goes on to the next entry after them.
func TestRefusedAtTheEndOfTheData(t *testing.T) {
	for _, bdat := range []bool{true, false} {
		t.Run(fmt.Sprintf("bdat=%v", bdat), func(t *testing.T) {
			r := newRig(t)
			r.opt.noChunking = !bdat
			m := startMTA(t, mtaOpts{tls: r.serverTLS(), dataAns: func(rcpt string, data []byte) *smtp.SMTPError {
				if !bytes.Contains(data, []byte("\r\n.leading dot line\r\n")) {
					return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "the dot line was not unstuffed"}
				}
				switch rcpt {
				case "late@council.test":
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
				case "bad@council.test":
					return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "content refused"}
				}
				return nil
			}})
			r.mx(m)
			late, bad, good := r.enqueue(t, "late@council.test"), r.enqueue(t, "bad@council.test"), r.enqueue(t, "bob@council.test")
			r.flush(t, r.relay(t))
			if e := r.entry(t, late); e.State != mailbox.QueueQueued || e.LastAnswer != "451 4.3.0 try again later" {
				t.Errorf("451 at the end of the data: %+v", e)
			}
			if e := r.entry(t, bad); e.State != mailbox.QueueFailed || e.LastAnswer != "554 5.7.1 content refused" {
				t.Errorf("554 at the end of the data: %+v", e)
			}
			if e := r.entry(t, good); e.State != mailbox.QueueDelivered {
				t.Errorf("the entry after the refusals: %+v", e)
			}
			got := m.messages()
			var delivered []string
			for _, g := range got {
				delivered = append(delivered, g.rcpt)
			}
			if !slices.Contains(delivered, "bob@council.test") || slices.Contains(delivered, "late@council.test") {
				t.Errorf("the MTA kept messages for %v", delivered)
			}
			for _, g := range got {
				if g.bdat != bdat {
					t.Errorf("the copy to %s came with BDAT %v, want %v", g.rcpt, g.bdat, bdat)
				}
			}
		})
	}
}

// TestOneConnectionForSeveralBatches: a worker keeps its session from one batch to the next while
// there is work, instead of connecting (and shaking hands) again for every batch.
func TestOneConnectionForSeveralBatches(t *testing.T) {
	r := newRig(t)
	r.opt.MessagesPerConnection, r.opt.MaxConnections = 2, 1
	m := startMTA(t, mtaOpts{tls: r.serverTLS()})
	r.mx(m)
	for i := range 5 {
		r.enqueue(t, fmt.Sprintf("bob%d@council.test", i))
	}
	r.flush(t, r.relay(t))
	if n := len(m.messages()); n != 5 {
		t.Fatalf("the MTA got %d messages, want 5", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.conns) != 1 {
		t.Errorf("%d connections for 3 batches of one worker, want 1", len(m.conns))
	}
}

// TestPipelinedAndOneByOne: the same answers give the same outcomes whether MAIL, RCPT and DATA (or
// BDAT) go in one write (the server offers PIPELINING) or one at a time, and the session carries on
// after each refusal: a 550 and a 451 to RCPT, a 554 at the end of the data, then a delivery.
func TestPipelinedAndOneByOne(t *testing.T) {
	for _, c := range []struct{ one, bdat bool }{{false, true}, {true, true}, {false, false}, {true, false}} {
		one, bdat := c.one, c.bdat
		t.Run(fmt.Sprintf("oneByOne=%v/bdat=%v", one, bdat), func(t *testing.T) {
			r := newRig(t)
			r.opt.noPipelining, r.opt.noChunking, r.opt.MaxConnections = one, !bdat, 1
			m := refusingMTA(t, r)
			r.mx(m)
			gone, later := r.enqueue(t, "gone@council.test"), r.enqueue(t, "later@council.test")
			bad, good := r.enqueue(t, "bad@council.test"), r.enqueue(t, "bob@council.test")
			r.flush(t, r.relay(t))
			for _, c := range []struct {
				id, state, answer string
			}{
				{gone, mailbox.QueueFailed, "550 5.1.1 no such user"},
				{later, mailbox.QueueQueued, "451 4.2.0 mailbox busy"},
				{bad, mailbox.QueueFailed, "554 5.7.1 content refused"},
			} {
				if e := r.entry(t, c.id); e.State != c.state || e.LastAnswer != c.answer {
					t.Errorf("entry %s: %s %q, want %s %q", c.id, e.State, e.LastAnswer, c.state, c.answer)
				}
			}
			if e := r.entry(t, good); e.State != mailbox.QueueDelivered {
				t.Errorf("the entry after the refusals: %+v", e)
			}
			var copies int
			for _, g := range m.messages() {
				if g.rcpt == "bob@council.test" && bytes.Equal(g.data, pkg("bob@council.test")) && g.bdat == bdat {
					copies++
				}
			}
			if copies != 1 {
				t.Errorf("bob got %d intact copies, want 1", copies)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(m.conns) != 2 { // council.test's entries, and the DSNs to the sender's agency.test
				t.Errorf("%d connections, want 2 (one per domain): a refusal broke the session", len(m.conns))
			}
		})
	}
}

// refusingMTA is an MTA that answers RCPT TO:<gone@council.test> 550, RCPT TO:<later@council.test>
// 451, and the content for bad@council.test 554; everything else it takes.
func refusingMTA(t *testing.T, r *rig) *mta {
	return startMTA(t, mtaOpts{tls: r.serverTLS(),
		answer: func(rcpt string, _ int) *smtp.SMTPError {
			switch rcpt {
			case "gone@council.test":
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			case "later@council.test":
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
			}
			return nil
		},
		dataAns: func(rcpt string, _ []byte) *smtp.SMTPError {
			if rcpt == "bad@council.test" {
				return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "content refused"}
			}
			return nil
		}})
}

// writeDotStuffedByLine is the line-at-a-time writer writeDotStuffed replaced, kept as its reference.
func writeDotStuffedByLine(w *bufio.Writer, content []byte) error {
	for len(content) > 0 {
		line := content
		rest := []byte(nil)
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, rest = content[:i], content[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		if _, err := w.WriteString("\r\n"); err != nil {
			return err
		}
		content = rest
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// FuzzWriteDotStuffed: the run-at-a-time writer sends exactly what the line-at-a-time one did.
func FuzzWriteDotStuffed(f *testing.F) {
	for _, s := range []string{"", "a\r\n", ".", "\n", "\r", "\n.", ".\r\n.\n..", "a\r", "a\r\r\n.b\nc\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		var got, want bytes.Buffer
		w := bufio.NewWriterSize(&got, 16)
		if err := writeDotStuffed(w, content); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		rw := bufio.NewWriter(&want)
		writeDotStuffedByLine(rw, content)
		rw.Flush()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("content %q: got %q, want %q", content, got.Bytes(), want.Bytes())
		}
	})
}

// TestOnlyCanonicalContentGoesByBDAT: a chunk is sent as it is, so content with a bare LF, or not
// ending in a line break, goes through DATA (whose writer mends it) even to a server offering
// CHUNKING, and arrives in the same form as before; canonical content goes as one BDAT chunk.
func TestOnlyCanonicalContentGoesByBDAT(t *testing.T) {
	for _, c := range []struct {
		content, want string
		bdat          bool
	}{
		{"Message-ID: <a@gw.test>\r\n\r\n.dot\r\nend\r\n", "Message-ID: <a@gw.test>\r\n\r\n.dot\r\nend\r\n", true},
		{"Message-ID: <b@gw.test>\r\n\r\nbare\nlf\r\n", "Message-ID: <b@gw.test>\r\n\r\nbare\r\nlf\r\n", false},
		{"Message-ID: <c@gw.test>\r\n\r\nno line break at the end", "Message-ID: <c@gw.test>\r\n\r\nno line break at the end\r\n", false},
	} {
		if got := canonical([]byte(c.content)); got != c.bdat {
			t.Errorf("canonical(%q) = %v", c.content, got)
		}
		r := newRig(t)
		m := startMTA(t, mtaOpts{tls: r.serverTLS()})
		r.mx(m)
		if _, err := r.store.Enqueue(context.Background(), &mailbox.Outbound{MessageID: "m1", From: "alice@agency.test",
			Recipient: "bob@council.test", Content: []byte(c.content)}); err != nil {
			t.Fatal(err)
		}
		r.flush(t, r.relay(t))
		got := m.messages()
		if len(got) != 1 || string(got[0].data) != c.want || got[0].bdat != c.bdat {
			t.Errorf("content %q: the MTA got %+v, want %q by BDAT %v", c.content, got, c.want, c.bdat)
		}
	}
}

// TestGroupsOfTransactions: entries for one destination go as pipelined groups of whole transactions
// (MAIL, RCPT, BDAT LAST, then RSET before the next), and each still gets its own outcome: a 550 to
// RCPT and a 554 to the content fail only their own entries, the others in the group are delivered
// once each, and the session goes on. With grouping off the outcomes are the same.
func TestGroupsOfTransactions(t *testing.T) {
	for _, grouping := range []bool{true, false} {
		t.Run(fmt.Sprintf("grouping=%v", grouping), func(t *testing.T) {
			r := newRig(t)
			r.opt.MaxConnections, r.opt.noGrouping = 1, !grouping
			var groups []int
			r.opt.onGroup = func(n int) { groups = append(groups, n) }
			m := refusingMTA(t, r)
			r.mx(m)
			rcpts := []string{"a@council.test", "gone@council.test", "b@council.test", "bad@council.test", "c@council.test"}
			ids := map[string]string{}
			for _, rc := range rcpts {
				ids[rc] = r.enqueue(t, rc)
			}
			r.flush(t, r.relay(t))
			for rc, id := range ids {
				e := r.entry(t, id)
				switch rc {
				case "gone@council.test":
					if e.State != mailbox.QueueFailed || e.LastAnswer != "550 5.1.1 no such user" {
						t.Errorf("%s: %s %q", rc, e.State, e.LastAnswer)
					}
				case "bad@council.test":
					if e.State != mailbox.QueueFailed || e.LastAnswer != "554 5.7.1 content refused" {
						t.Errorf("%s: %s %q", rc, e.State, e.LastAnswer)
					}
				default:
					if e.State != mailbox.QueueDelivered || !strings.HasPrefix(e.LastAnswer, "250 ") {
						t.Errorf("%s: %s %q", rc, e.State, e.LastAnswer)
					}
				}
			}
			got := map[string]int{}
			for _, g := range m.messages() {
				if bytes.Equal(g.data, pkg(g.rcpt)) {
					got[g.rcpt]++
				}
			}
			for _, rc := range []string{"a@council.test", "b@council.test", "c@council.test"} {
				if got[rc] != 1 {
					t.Errorf("%s got %d intact copies, want 1", rc, got[rc])
				}
			}
			if grouping && (len(groups) == 0 || groups[0] != len(rcpts)) {
				t.Errorf("groups sent: %v, want the 5 entries in one", groups)
			}
			if !grouping && slices.ContainsFunc(groups, func(n int) bool { return n != 1 }) {
				t.Errorf("groups sent with grouping off: %v, want one transaction each", groups)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(m.conns) != 2 { // council.test's entries, and the DSNs to the sender's agency.test
				t.Errorf("%d connections, want 2 (one per domain): a refusal broke the session", len(m.conns))
			}
		})
	}
}

// TestGroupCutShort: when the connection breaks in the middle of a group, the entries answered
// before it keep their outcomes and the rest are tried again later.
func TestGroupCutShort(t *testing.T) {
	r := newRig(t)
	r.opt.MaxConnections = 1
	var m *mta
	m = startMTA(t, mtaOpts{tls: r.serverTLS(), answer: func(rcpt string, try int) *smtp.SMTPError {
		if rcpt == "cut@council.test" && try == 1 {
			m.closeConns()
		}
		return nil
	}})
	r.mx(m)
	first, cut, last := r.enqueue(t, "a@council.test"), r.enqueue(t, "cut@council.test"), r.enqueue(t, "b@council.test")
	r.flush(t, r.relay(t))
	if e := r.entry(t, first); e.State != mailbox.QueueDelivered {
		t.Errorf("the entry answered before the break: %s %q", e.State, e.LastAnswer)
	}
	for _, id := range []string{cut, last} {
		if e := r.entry(t, id); e.State != mailbox.QueueQueued || !strings.Contains(e.LastAnswer, "broke") {
			t.Errorf("an entry the break left unanswered: %s %q", e.State, e.LastAnswer)
		}
	}
}
